"""The loss benchmark's peer: the same downloads between libcoap's own client and server.

`loss.py` measures our server and simulated devices through `udp_proxy.py`. This module
runs what CoAP itself costs on that link: `coap-server-notls` holds the image (put there
once, directly), and one `coap-client-notls` per device fetches it block by block through
the same proxy, with the same loss, duplication and block size. Both libcoap programs use
RFC 7252's default timers, as our devices do, so the lossy/lossless ratio here is the
floor of our devices' Downloading phase on that link, measured in the same run.

Imported by loss.py (the bench directory is on sys.path when a benchmark runs).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import procs

SERVER, CLIENT = "coap-server-notls", "coap-client-notls"
PROXY = str(Path(__file__).with_name("udp_proxy.py"))


def missing() -> str | None:
    """Why the peer cannot run here, or None."""
    absent = [tool for tool in (SERVER, CLIENT) if shutil.which(tool) is None]
    return f"{', '.join(absent)} not found (Debian: libcoap3-bin)" if absent else None


async def _run(*args: str, timeout: float) -> int:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        return await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -9


async def _await_ready(uri: str, attempts: int = 20) -> None:
    """A small GET answered through `uri`'s host: the server and the proxy are up (each
    attempt is bounded; the proxy may drop one, so a few attempts)."""
    for _ in range(attempts):
        if await _run(CLIENT, "-B", "3", uri, timeout=5) == 0:
            return
    raise RuntimeError(f"{uri} never answered")


async def _fetch(uri: str, out: Path, block: int, patience: float, t0: float) -> float:
    """One device's download; seconds from t0 to its end."""
    await _run(CLIENT, "-b", str(block), "-B", str(int(patience)), "-o", str(out), uri,
               timeout=patience + 10)
    return time.monotonic() - t0


async def downloads(devices: int, loss: float, dup: float, tmp: Path, block: int,
                    image_bytes: int, patience: float) -> dict[str, Any]:
    """`devices` concurrent downloads of an `image_bytes` image through the proxy."""
    tmp.mkdir(parents=True, exist_ok=True)
    image = tmp / "image"
    image.write_bytes(os.urandom(image_bytes))
    port, proxy_port = procs.free_udp_port(), procs.free_udp_port()
    server = await asyncio.create_subprocess_exec(
        SERVER, "-A", "127.0.0.1", "-p", str(port), "-d", "4",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    proxy = await asyncio.create_subprocess_exec(
        sys.executable, PROXY, str(proxy_port), str(port), "--loss", str(loss), "--dup",
        str(dup))
    try:
        await _await_ready(f"coap://127.0.0.1:{port}/")
        put = await _run(CLIENT, "-m", "put", "-b", "1024", "-f", str(image),
                         f"coap://127.0.0.1:{port}/fw", timeout=30)
        if put != 0:
            raise RuntimeError(f"PUT of the image to {SERVER} failed ({put})")
        await _await_ready(f"coap://127.0.0.1:{proxy_port}/")
        cpu = procs.children_cpu_s()
        t0 = time.monotonic()
        ends = await asyncio.gather(*(
            _fetch(f"coap://127.0.0.1:{proxy_port}/fw", tmp / f"out-{i}", block, patience, t0)
            for i in range(devices)))
        clients_cpu = procs.children_cpu_s() - cpu
    finally:
        await procs.stop(proxy, 30)
        await procs.stop(server, 30)
    wanted = image.read_bytes()
    done = sorted(end for i, end in enumerate(ends)
                  if (tmp / f"out-{i}").exists() and (tmp / f"out-{i}").read_bytes() == wanted)
    return {"loss": loss, "duplication": dup, "complete": len(done),
            "all_s": round(done[-1], 2) if len(done) == devices else None,
            "median_s": round(statistics.median(done), 2) if done else None,
            "p90_s": round(done[int(0.9 * (len(done) - 1))], 2) if done else None,
            "clients_cpu_s": round(clients_cpu, 1)}


async def compare(devices: int, loss: float, dup: float, tmp: Path, block: int,
                  image_bytes: int, patience: float) -> dict[str, Any]:
    """The lossless and the lossy run, and their ratio (None where one did not complete)."""
    why = missing()
    if why is not None:
        return {"skipped": why}
    # A lossless download takes well under a second; libcoap 4.3.1's client was seen to
    # stop asking in the middle of one on a lossless link (no request outstanding, no
    # timer), so the lossless arm gets a short bound and the figures are percentiles.
    lossless = await downloads(devices, 0.0, 0.0, tmp / "lossless", block, image_bytes,
                               min(patience, 60.0))
    lossy = await downloads(devices, loss, dup, tmp / "lossy", block, image_bytes, patience)
    ratios = {f"{figure}_ratio": round(lossy[figure] / lossless[figure], 2)
              for figure in ("all_s", "median_s", "p90_s") if lossless[figure] and lossy[figure]}
    return {"what": f"{devices} x {CLIENT} GET of {image_bytes} bytes from {SERVER}, "
                    f"{block} B blocks, through the same proxy",
            "lossless": lossless, "lossy": lossy, **ratios}
