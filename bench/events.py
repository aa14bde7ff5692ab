"""Event-stream benchmark, printed as one JSON object: what the dashboard open and 10
clients on `GET /events` cost a running rollout.

One `fota serve` and one `fota simulate` (1,000 devices, 64 KiB image, 512-byte blocks)
as two processes on loopback, as bench/rollout.py runs them. The collection's target
flips between 1.0 and 2.0, `--rounds` times each way: every other rollout is watched by
10 SSE clients reading the whole stream (raw sockets in this process, so the clients cost
the server only what serving them costs) and one open dashboard (a client doing what
ui.js does: load /ui, keep its /events stream, and fetch the live fragment again at most
once a second while events arrive, and every 15 s), the others by nobody. Each rollout's
time is commit -> every device logged Current; the ratio is the total watched over the
total unwatched (goal <= 1.10). Alternating cancels the drift of a warming or loaded
machine; the server's own CPU seconds per rollout (from /proc) give a second ratio that
the load of other work on the machine inflates far less than wall time.

    .venv/bin/python bench/events.py [--devices 1000] [--clients 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import procs
from rollout import Server, make_repo, set_target

PATIENCE = 900.0  # seconds a rollout may take before the run is abandoned (a loaded machine)
MIN_GAP = 1.0  # ui.js: at most one refresh of the live fragment a second
SLOW = 15.0  # ui.js: and one every 15 s while the stream is open


class SseClient:
    """One /events reader over a raw socket: counts the events it got."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.path = "/events"
        self.events = 0
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(b"GET %s HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n"
                     % self.path.encode())
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


class Dashboard:
    """The overview page open in a browser, as ui.js drives it: the page once, then its
    /events stream, each burst of events answered by one fetch of the live fragment
    (X-Fragment: live) no sooner than MIN_GAP after the last, and one every SLOW."""

    def __init__(self, port: int) -> None:
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
        self.stream = SseClient(port)
        self.refreshes = 0
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        page = await self.http.get("/ui")
        found = re.search(r'data-events="([^"]+)"', page.text)
        if page.status_code != 200 or found is None:
            raise RuntimeError(f"/ui answered {page.status_code} without data-events")
        self.stream.path = found.group(1)
        await self.stream.start()
        self.task = asyncio.create_task(self._refresh())

    async def _refresh(self) -> None:
        seen, last = 0, 0.0
        while True:
            await asyncio.sleep(max(0.05, last + MIN_GAP - time.monotonic()))
            if self.stream.events == seen and time.monotonic() - last < SLOW:
                continue
            seen, last = self.stream.events, time.monotonic()
            answer = await self.http.get("/ui", headers={"X-Fragment": "live"})
            answer.raise_for_status()
            self.refreshes += 1

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.stream.stop()
        await self.http.aclose()


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    times: dict[str, list[float]] = {"none": [], "watched": []}
    server_cpu: dict[str, list[float]] = {"none": [], "watched": []}
    received: list[int] = []
    refreshes: list[int] = []
    load = [os.getloadavg()[0]]
    try:
        await server.wait_for(lambda line: "-> Current: running 1.0" in line, devices, 120)
        version = "1.0"
        for _ in range(rounds):
            for mode in ("none", "watched"):
                version = "2.0" if version == "1.0" else "1.0"
                readers = [SseClient(http_port) for _ in range(clients if mode != "none" else 0)]
                boards = [Dashboard(http_port)] if mode != "none" else []
                watchers: list[SseClient | Dashboard] = [*readers, *boards]
                await asyncio.gather(*(w.start() for w in watchers))
                try:
                    before = cpu_s(server.proc.pid)
                    times[mode].append(await one_rollout(server, repo, version, devices))
                    server_cpu[mode].append(cpu_s(server.proc.pid) - before)
                    await asyncio.sleep(0.5)  # the last events reach the clients
                finally:  # an abandoned run stops its clients before the server
                    await asyncio.gather(*(w.stop() for w in watchers))
                received += [r.events for r in readers]
                refreshes += [b.refreshes for b in boards]
        rss = server.rss_mb()
        load.append(os.getloadavg()[0])
    finally:
        await procs.stop(sim, 30)
        await server.stop()
    ratio = sum(times["watched"]) / sum(times["none"])
    cpu_ratio = sum(server_cpu["watched"]) / sum(server_cpu["none"])
    return {"devices": devices, "sse_clients": clients, "dashboards": 1, "rounds": rounds,
            "rollout_s_unwatched": [round(t, 2) for t in times["none"]],
            "rollout_s_watched": [round(t, 2) for t in times["watched"]],
            "server_cpu_s_unwatched": [round(t, 2) for t in server_cpu["none"]],
            "server_cpu_s_watched": [round(t, 2) for t in server_cpu["watched"]],
            "events_per_client": {"min": min(received, default=0),
                                  "max": max(received, default=0)},
            "dashboard_refreshes": refreshes,
            "ratio_watched_over_unwatched": round(ratio, 3),
            "server_cpu_ratio": round(cpu_ratio, 3), "goal_ratio": 1.10,
            "load_avg_1m_start_end": [round(x, 2) for x in load],
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
