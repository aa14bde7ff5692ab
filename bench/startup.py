"""Startup benchmark: how long `fota serve` leaves the CoAP port silent once it answers.

`fota serve` runs on a copy of this repository (its manifests: the demo fleet), a raw
UDP socket sends a CoAP ping (an empty CON, answered with a Reset) every 5 ms from the
start, and the script reports, from the first Reset until 1 s after the "fota serve
ready" line: the longest gap between two Resets (goal: under 100 ms, as for any loop
pause), the time to the first answer and to ready, and the run's load average. Printed
as one JSON object.

    .venv/bin/python bench/startup.py [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import procs

ROOT = Path(__file__).resolve().parent.parent
FOTA = Path(sys.executable).with_name("fota")
PING_EVERY = 0.005


def _ping(mid: int) -> bytes:
    return struct.pack("!BBH", 0x40, 0x00, mid & 0xFFFF)  # CON, Empty, no token


async def _one_run(workdir: Path) -> dict[str, float | None]:
    repo = workdir / "repo"
    subprocess.run(["git", "clone", "-q", "-b", "main", str(ROOT), str(repo)], check=True)
    port = procs.free_udp_port()
    http = procs.free_tcp_port()
    proc = await asyncio.create_subprocess_exec(
        str(FOTA), "serve", "--repo", str(repo), "--state", str(workdir / "state.db"),
        "--coap", f"127.0.0.1:{port}", "--http", f"127.0.0.1:{http}",
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    started, answers, ready = time.monotonic(), [], None

    async def read_log() -> None:
        nonlocal ready
        assert proc.stderr is not None
        async for line in proc.stderr:
            if b"fota serve ready" in line:
                ready = time.monotonic()

    reader = asyncio.create_task(read_log())
    try:
        mid = 0
        while ready is None or time.monotonic() < ready + 1.0:
            if time.monotonic() - started > 60:
                raise RuntimeError("fota serve not ready within 60 s")
            mid += 1
            sock.sendto(_ping(mid), ("127.0.0.1", port))
            await asyncio.sleep(PING_EVERY)
            while True:
                try:
                    sock.recv(64)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                answers.append(time.monotonic())
    finally:
        sock.close()
        await procs.stop(proc, 10)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    gaps = [b - a for a, b in itertools.pairwise(answers)]
    return {"first_answer_s": round(answers[0] - started, 3) if answers else None,
            "ready_s": round(ready - started, 3) if ready else None,
            "longest_coap_gap_ms": round(max(gaps) * 1000, 1) if gaps else None}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        workdir = Path(tempfile.mkdtemp(prefix="fota-startup-"))
        try:
            runs.append(await _one_run(workdir))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps({"runs": runs, "load": os.getloadavg()[0],
                      "goal_ms": 100}, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
