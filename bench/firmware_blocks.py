"""Firmware blocks per second served to parallel libcoap clients: ours against libcoap's.

Side by side on loopback, one server at a time in its own process: libcoap's
coap-server-notls (the image PUT into a dynamic resource, since it cannot serve a file),
our datagram fast path on its own socket (`BlockServer`), the fast path hooked into an
aiocoap server socket (`install_fast_path`, as `Lwm2mServer` can run it), and the plain
aiocoap resource. Each gets `--clients` parallel coap-client-notls processes downloading
the image block-wise in a loop for `--seconds`; every download is checked byte-exact.
Prints one JSON object: blocks/s, server CPU seconds, blocks per server CPU second and
the ratios to libcoap. Run: .venv/bin/python bench/firmware_blocks.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import procs

ROOT = Path(__file__).resolve().parents[1]
CLIENT, SERVER = "coap-client-notls", "coap-server-notls"
OURS = ("fast", "fast_shared", "aiocoap")
GRACE = 3.0  # seconds a download may run past the deadline before it is killed


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the servers -------------------------------------------------------------------


async def serve(kind: str, image_file: str, port: int) -> None:
    """Child process: serve the image one way until SIGTERM; print the URI first."""
    from aiocoap import Context, resource
    from blockserver import BlockServer

    from reconciler.lwm2m.fastpath import install_fast_path
    from reconciler.lwm2m.firmware import FirmwareRepository

    repository = FirmwareRepository()
    path = repository.offer("bench-device", "bench-image", Path(image_file).read_bytes())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if kind == "fast":
        server = BlockServer(repository, "127.0.0.1", port)
        await server.start()
        print(json.dumps({"uri": server.base_uri + path}), flush=True)
        await stop.wait()
        await server.stop()
        return
    site = resource.Site()
    repository.mount(site)
    context = await Context.create_server_context(site, bind=("127.0.0.1", port))
    if kind == "fast_shared":
        install_fast_path(context, repository)
    print(json.dumps({"uri": f"coap://127.0.0.1:{port}{path}"}), flush=True)
    await stop.wait()
    await context.shutdown()


def start_ours(kind: str, image_file: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            kind,
            "--image",
            image_file,
            "--port",
            str(procs.free_udp_port()),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    return process, json.loads(process.stdout.readline())["uri"]


def start_libcoap(image_file: str) -> tuple[subprocess.Popen[str], str]:
    port = procs.free_udp_port()
    process = subprocess.Popen(
        [SERVER, "-A", "127.0.0.1", "-p", str(port), "-d", "4", "-v", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    uri = f"coap://127.0.0.1:{port}/fw/bench-token"
    if listening(process, port):
        put = subprocess.run(
            [CLIENT, "-m", "put", "-f", image_file, "-b", "1024", "-B", "2", uri],
            capture_output=True,
        )
        if put.returncode == 0 and not put.stderr.startswith((b"4.", b"5.")):
            return process, uri
    process.terminate()
    process.wait(timeout=10)
    raise RuntimeError("coap-server-notls did not take the image")


def listening(process: subprocess.Popen[str], port: int) -> bool:
    """Whether coap-server answers a CoAP ping (empty CON, RFC 7252 §4.3) with a RST
    within 5 s. The PUT cannot tell: sent before the server binds it is refused, yet
    coap-client exits 0. (A blocking copy of the readiness wait in
    tests/integration/simulator/test_libcoap_interop.py, which is async.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("127.0.0.1", port))
        probe.settimeout(0.05)
        for _ in range(100):
            if process.poll() is not None:
                return False
            try:
                probe.send(b"\x40\x00\x12\x34")
                if probe.recv(64)[:1] == b"\x70":  # v1, RST, empty
                    return True
            except TimeoutError:
                pass  # no answer within the 50 ms timeout: ask again
            except ConnectionRefusedError:
                time.sleep(0.05)  # ICMP port unreachable: not bound yet
    return False


# --- the load ----------------------------------------------------------------------


async def download(uri: str, block_size: int, out: Path, limit: float = 30.0) -> bool:
    """One coap-client download; killed (and failed) when it outlives `limit` seconds."""
    process = await asyncio.create_subprocess_exec(
        CLIENT,
        "-b",
        str(block_size),
        "-B",
        "60",
        "-o",
        str(out),
        uri,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        return await asyncio.wait_for(process.wait(), max(limit, 0.1)) == 0
    except TimeoutError:
        process.kill()
        await process.wait()
        return False


async def worker(
    uri: str, args: argparse.Namespace, image: bytes, out: Path, start: float
) -> tuple[int, int, float]:
    """Downloads in a loop until the deadline; (completed, failed, end of the last one)."""
    done = failed = 0
    last_end, deadline = start, start + args.seconds
    while time.monotonic() < deadline:
        out.unlink(missing_ok=True)
        ok = await download(uri, args.block_size, out, deadline + GRACE - time.monotonic())
        if ok and out.read_bytes() == image:
            done, last_end = done + 1, time.monotonic()
        else:
            failed += 1
    return done, failed, last_end


async def load(uri: str, args: argparse.Namespace, image: bytes, work: Path) -> dict[str, float]:
    """Blocks of completed, byte-exact downloads over the time until the last of them ended
    (a download stuck past the deadline is killed and neither counted nor timed)."""
    blocks_per_download = -(-len(image) // args.block_size)
    start = time.monotonic()
    results = await asyncio.gather(
        *(worker(uri, args, image, work / f"out{i}.bin", start) for i in range(args.clients))
    )
    elapsed = max(r[2] for r in results) - start
    done = sum(r[0] for r in results)
    return {
        "downloads": done,
        "failed_downloads": sum(r[1] for r in results),
        "seconds": round(elapsed, 2),
        "blocks_per_second": round(done * blocks_per_download / elapsed, 1) if elapsed else 0.0,
    }


async def measure(
    kind: str, args: argparse.Namespace, image: bytes, work: Path
) -> dict[str, float]:
    image_file = str(work / "image.bin")
    process, uri = start_libcoap(image_file) if kind == "libcoap" else start_ours(kind, image_file)
    try:
        assert await download(uri, args.block_size, work / "check.bin")
        assert (work / "check.bin").read_bytes() == image, f"{kind} served other bytes"
        cpu_before = cpu_seconds(process.pid)
        figures = await load(uri, args, image, work)
        cpu = cpu_seconds(process.pid) - cpu_before
    finally:
        process.terminate()
        process.wait(timeout=10)
    blocks = figures["blocks_per_second"] * figures["seconds"]
    figures["server_cpu_seconds"] = round(cpu, 2)
    figures["blocks_per_server_cpu_second"] = round(blocks / cpu, 1) if cpu else 0.0
    return figures


async def bench(args: argparse.Namespace) -> dict[str, object]:
    image = os.urandom(args.image_kib * 1024)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "image.bin").write_bytes(image)
        runs = {kind: await measure(kind, args, image, work) for kind in ("libcoap", *args.ours)}
    base = runs["libcoap"]["blocks_per_second"]
    return {
        "benchmark": "firmware_blocks",
        "clients": args.clients,
        "block_size": args.block_size,
        "image_bytes": len(image),
        "seconds_per_server": args.seconds,
        "cpus": os.cpu_count(),
        "servers": runs,
        "ratio_to_libcoap": {
            kind: round(runs[kind]["blocks_per_second"] / base, 3) for kind in args.ours
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--image-kib", type=int, default=256)
    parser.add_argument("--ours", nargs="*", default=list(OURS), choices=OURS)
    parser.add_argument("--serve", choices=OURS, help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.image, args.port))
        return 0
    missing = [tool for tool in (CLIENT, SERVER) if shutil.which(tool) is None]
    if missing:
        print(json.dumps({"benchmark": "firmware_blocks", "error": f"missing {missing}"}))
        return 1
    print(json.dumps(asyncio.run(bench(args)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
