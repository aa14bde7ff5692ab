"""The loss benchmark's peer: the same downloads between libcoap's own client and server.

`loss.py` measures our server and simulated devices through `udp_proxy.py`. This module
runs what CoAP itself costs on that link: `coap-server-notls` holds the image (put there
once, directly), and one `coap-client-notls` per device fetches it block by block through
the same proxy, with the same loss, duplication and block size. Both libcoap programs use
RFC 7252's default timers, as our devices do, so the lossy/lossless ratio here is the
floor of our devices' Downloading phase on that link, measured in the same run.

Each client gets a bound derived from its expected transfer (`client_bound`), passed to
libcoap as `-B` and enforced from here a few seconds later: libcoap 4.3.1's client was
seen to stop asking in the middle of a download (no request outstanding, no timer) and
would otherwise hold the run, and the bench lock, for the whole `--patience` (20
minutes). The whole run (server, proxy, clients) has one deadline; a client still
running then is killed, never waited for, and those that ran into their bound are
counted (`cut_at_bound`).

Imported by loss.py (the bench directory is on sys.path when a benchmark runs).
"""

from __future__ import annotations

import asyncio
import math
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

# One block's exchange through the proxy with 100 clients on 2 loaded cores, on top of the
# link's round trip: lossless loopback runs took 2.5-3 s (median) for 128 blocks.
EXCHANGE_S = 0.05
# What a lost exchange costs a client: RFC 7252's first retransmission timeout, ACK_TIMEOUT
# 2 s times the mean of its random factor (1 to 1.5).
RETRANSMIT_S = 2.5
# A client may take this many times its expected transfer, plus MARGIN_S: a block lost
# twice in a row (2.5 + 5 s), a loaded machine. Lossy medians measured 35-37 s against an
# expected 34 s (64 KiB, 512 B blocks, 5 % loss each way).
SLACK, MARGIN_S = 3.0, 30.0
SETUP_S = 150.0  # the run's deadline beyond its clients' bound: readiness checks, the PUT
KILL_GRACE_S = 5.0  # past its own -B, a client is killed from here


def client_bound(image_bytes: int, block: int, loss: float, patience: float,
                 rtt: float = 0.0) -> float:
    """Seconds one client may take: SLACK times its expected transfer (one exchange per
    block, each the link's round trip `rtt` plus EXCHANGE_S, and a retransmission
    timeout for the share of exchanges lost either way) plus MARGIN_S, and never more
    than `patience`."""
    blocks = math.ceil(image_bytes / block)
    lost = 1 - (1 - loss) ** 2  # the request or its answer
    return min(patience, math.ceil(
        SLACK * blocks * (rtt + EXCHANGE_S + lost * RETRANSMIT_S) + MARGIN_S))


def missing() -> str | None:
    """Why the peer cannot run here, or None."""
    absent = [tool for tool in (SERVER, CLIENT) if shutil.which(tool) is None]
    return f"{', '.join(absent)} not found (Debian: libcoap3-bin)" if absent else None


async def _run(*args: str, timeout: float) -> int:
    """The exit code, or -9 once `timeout` passed and it was killed; killed too when
    the caller is cancelled (the run's deadline): no child outlives its wait."""
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        return await asyncio.wait_for(proc.wait(), max(timeout, 0.0))
    except TimeoutError:
        return -9
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _await_ready(uri: str, attempts: int = 20, rtt: float = 0.0) -> None:
    """A small GET answered through `uri`'s host: the server and the proxy are up (each
    attempt is bounded, a few round trips more on a slow link; the proxy may drop one,
    so a few attempts)."""
    bound = math.ceil(3 + 3 * rtt)
    for _ in range(attempts):
        if await _run(CLIENT, "-B", str(bound), uri, timeout=bound + 2) == 0:
            return
    raise RuntimeError(f"{uri} never answered")


async def _fetch(uri: str, out: Path, block: int, bound: float, t0: float
                 ) -> tuple[float, bool]:
    """One device's download: (seconds from t0 to its end, killed after its bound)."""
    code = await _run(CLIENT, "-b", str(block), "-B", str(max(int(bound), 1)), "-o",
                      str(out), uri, timeout=bound + KILL_GRACE_S)
    return time.monotonic() - t0, code == -9


async def downloads(devices: int, loss: float, dup: float, tmp: Path, block: int,
                    image_bytes: int, patience: float, rtt: float = 0.0) -> dict[str, Any]:
    """`devices` concurrent downloads of an `image_bytes` image through the proxy (its
    round trip `rtt` seconds), each within `client_bound`, the whole within that plus
    SETUP_S."""
    bound = client_bound(image_bytes, block, loss, patience, rtt)
    deadline = time.monotonic() + bound + SETUP_S
    tmp.mkdir(parents=True, exist_ok=True)
    image = tmp / "image"
    image.write_bytes(os.urandom(image_bytes))
    port, proxy_port = procs.free_udp_port(), procs.free_udp_port()
    server = await asyncio.create_subprocess_exec(
        SERVER, "-A", "127.0.0.1", "-p", str(port), "-d", "4",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    proxy = await asyncio.create_subprocess_exec(
        sys.executable, PROXY, str(proxy_port), str(port), "--loss", str(loss), "--dup",
        str(dup), "--delay", str(rtt * 1000 / 2))
    try:
        await _await_ready(f"coap://127.0.0.1:{port}/")
        put = await _run(CLIENT, "-m", "put", "-b", "1024", "-f", str(image),
                         f"coap://127.0.0.1:{port}/fw", timeout=30)
        if put != 0:
            raise RuntimeError(f"PUT of the image to {SERVER} failed ({put})")
        await _await_ready(f"coap://127.0.0.1:{proxy_port}/", rtt=rtt)
        cpu = procs.children_cpu_s()
        t0 = time.monotonic()
        bound = min(bound, deadline - t0)  # what the set-up left of the run's deadline
        fetched = await asyncio.gather(*(
            _fetch(f"coap://127.0.0.1:{proxy_port}/fw", tmp / f"out-{i}", block, bound, t0)
            for i in range(devices)))
        clients_cpu = procs.children_cpu_s() - cpu
    finally:
        await procs.stop(proxy, 30)
        await procs.stop(server, 30)
    wanted = image.read_bytes()
    done = sorted(end for i, (end, _) in enumerate(fetched)
                  if (tmp / f"out-{i}").exists() and (tmp / f"out-{i}").read_bytes() == wanted)
    # Ran into its bound: ended by its own -B (a stuck client) or killed here after it.
    cut = sum(killed or end >= bound for end, killed in fetched)
    return {"loss": loss, "duplication": dup, "rtt_ms": round(rtt * 1000, 1),
            "client_bound_s": round(bound, 1),
            "complete": len(done), "cut_at_bound": cut,
            "all_s": round(done[-1], 2) if len(done) == devices else None,
            "median_s": round(statistics.median(done), 2) if done else None,
            "p90_s": round(done[int(0.9 * (len(done) - 1))], 2) if done else None,
            "clients_cpu_s": round(clients_cpu, 1)}


async def compare(devices: int, loss: float, dup: float, tmp: Path, block: int,
                  image_bytes: int, patience: float, rtt: float = 0.0) -> dict[str, Any]:
    """The lossless and the lossy run, and their ratio (None where one did not complete),
    through a proxy with the round trip `rtt` (seconds)."""
    why = missing()
    if why is not None:
        return {"skipped": why}
    # libcoap 4.3.1's client was seen to stop asking in the middle of a download (no
    # request outstanding, no timer): each client's bound (client_bound) ends it, and the
    # figures are percentiles of those that completed.
    lossless = await downloads(devices, 0.0, 0.0, tmp / "lossless", block, image_bytes,
                               patience, rtt)
    lossy = await downloads(devices, loss, dup, tmp / "lossy", block, image_bytes, patience,
                            rtt)
    ratios = {f"{figure}_ratio": round(lossy[figure] / lossless[figure], 2)
              for figure in ("all_s", "median_s", "p90_s") if lossless[figure] and lossy[figure]}
    return {"what": f"{devices} x {CLIENT} GET of {image_bytes} bytes from {SERVER}, "
                    f"{block} B blocks, through the same proxy",
            "lossless": lossless, "lossy": lossy, **ratios}
