"""Event-stream benchmark, printed as one JSON object: what 10 clients on `GET /events`
cost a running rollout.

One `fota serve` and one `fota simulate` (1,000 devices, 64 KiB image, 512-byte blocks)
as two processes on loopback, as bench/rollout.py runs them. The collection's target
flips between 1.0 and 2.0, `--rounds` times each way: every other rollout runs with 10
SSE clients reading the whole stream (raw sockets in this process, so the clients cost
the server only what serving them costs), the others with none. Each rollout's time is
commit -> every device logged Current; the ratio is the total with clients over the total
without (goal <= 1.10). Alternating cancels the drift of a warming or loaded machine.

    .venv/bin/python bench/events.py [--devices 1000] [--clients 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import procs
from rollout import Server, make_repo, set_target

PATIENCE = 300.0  # seconds a rollout may take before the run is abandoned (a loaded machine)


class SseClient:
    """One /events reader over a raw socket: counts the events it got."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.events = 0
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(b"GET /events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"/events answered {head[:40]!r}")
        self.task = asyncio.create_task(self._read(reader, writer))

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                self.events += chunk.count(b"\ndata: ")
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def one_rollout(server: Server, repo: Any, version: str, devices: int) -> float:
    committed = set_target(repo, version)
    done = await server.wait_for(lambda line: f"-> Current: running {version}" in line,
                                 devices, PATIENCE, since=committed)
    return done - committed


async def run(devices: int, clients: int, rounds: int, tmp: Path) -> dict[str, Any]:
    endpoints = [f"sim-{i:05d}" for i in range(devices)]
    repo = make_repo(tmp / "repo", endpoints)
    port = procs.free_udp_port()
    server = Server(tmp / "repo", tmp / "state.db", port, {})
    await server.start()
    http_port = _http_port(server)
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler.cli", "simulate", "--server",
        f"coap://127.0.0.1:{port}", "--repo", str(tmp / "repo"), "--count", str(devices),
        "--version", "1.0", stdout=asyncio.subprocess.DEVNULL)
    times: dict[str, list[float]] = {"none": [], "sse": []}
    received: list[int] = []
    try:
        await server.wait_for(lambda line: "-> Current: running 1.0" in line, devices, 120)
        version = "1.0"
        for _ in range(rounds):
            for mode in ("none", "sse"):
                version = "2.0" if version == "1.0" else "1.0"
                readers = [SseClient(http_port) for _ in range(clients if mode == "sse" else 0)]
                await asyncio.gather(*(r.start() for r in readers))
                times[mode].append(await one_rollout(server, repo, version, devices))
                await asyncio.sleep(0.5)  # the last events reach the clients
                received += [r.events for r in readers]
                await asyncio.gather(*(r.stop() for r in readers))
        rss = server.rss_mb()
    finally:
        await procs.stop(sim, 30)
        await server.stop()
    ratio = sum(times["sse"]) / sum(times["none"])
    return {"devices": devices, "sse_clients": clients, "rounds": rounds,
            "rollout_s_without_clients": [round(t, 2) for t in times["none"]],
            "rollout_s_with_clients": [round(t, 2) for t in times["sse"]],
            "events_per_client": {"min": min(received, default=0),
                                  "max": max(received, default=0)},
            "ratio_with_over_without": round(ratio, 3), "goal_ratio": 1.10,
            "server_rss_mb": round(rss, 1)}


def _http_port(server: Server) -> int:
    for _, line in server.lines:
        if m := re.search(r"http [\d.]+:(\d+)", line):
            return int(m.group(1))
    raise RuntimeError("fota serve did not say its HTTP port")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        result = asyncio.run(run(args.devices, args.clients, args.rounds, Path(tmp)))
        result["bench_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
