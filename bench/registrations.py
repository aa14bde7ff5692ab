"""Registration interface throughput and server memory, printed as one JSON object.

Starts `Lwm2mServer` in a child process on a loopback port, then drives it from many
endpoints, each with its own UDP socket (as real devices have): Register exchanges, then
Update exchanges (`POST /rd/<id>`), one request in flight per endpoint and `--workers`
endpoints talking at once. Reports exchanges per second for each phase and the server's
RSS at the start, after half and after all exchanges, and after `--idle` seconds of silence (60 s by
default, instead of the 5 minutes of the issue). `--stock-dedup` puts aiocoap's own
duplicate cache back, to see what the bounded one saves.

    .venv/bin/python bench/registrations.py [--exchanges 200000] [--idle 60]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import subprocess
import sys
import time
from typing import Any

from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type

LINKS = b"</1/0>,</3/0>,</5/0>"
RETRY_SECONDS = 2.0


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Endpoint(asyncio.DatagramProtocol):
    """One simulated device: its own socket, one request in flight."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: Any = None
        self.waiting: asyncio.Future[bytes] | None = None
        self.mid = 0
        self.location: tuple[str, ...] = ()
        self.update_template = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        waiting = self.waiting
        if waiting is None or waiting.done() or len(data) < 4:
            return
        if int.from_bytes(data[2:4], "big") == self.mid:
            waiting.set_result(data)

    async def exchange(self, template: bytes, stats: dict[str, int]) -> bytes:
        self.mid = (self.mid + 1) & 0xFFFF
        datagram = template[:2] + self.mid.to_bytes(2, "big") + template[4:]
        while True:
            self.waiting = asyncio.get_running_loop().create_future()
            self.transport.sendto(datagram)
            try:
                return await asyncio.wait_for(self.waiting, RETRY_SECONDS)
            except TimeoutError:
                stats["retransmissions"] += 1

    async def register(self, stats: dict[str, int]) -> None:
        template = Message(_mtype=Type.CON, _mid=0, _token=b"rg", code=Code.POST,
                           uri_path=("rd",), content_format=40, payload=LINKS,
                           uri_query=(f"ep={self.name}", "lt=86400", "lwm2m=1.1", "b=U"),
                           ).encode()
        answer = Message.decode(await self.exchange(template, stats))
        if answer.code != Code.CREATED:
            raise RuntimeError(f"{self.name}: register answered {answer.code}")
        self.location = tuple(answer.opt.location_path)
        self.update_template = Message(_mtype=Type.CON, _mid=0, _token=b"up", code=Code.POST,
                                       uri_path=self.location).encode()

    async def update(self, stats: dict[str, int]) -> None:
        answer = await self.exchange(self.update_template, stats)
        if answer[1] != Code.CHANGED:
            raise RuntimeError(f"{self.name}: update answered {answer[1]}")


async def open_endpoints(count: int, port: int) -> list[Endpoint]:
    loop = asyncio.get_running_loop()
    endpoints = []
    for index in range(count):
        _, protocol = await loop.create_datagram_endpoint(
            functools.partial(Endpoint, f"bench-{index:05d}"), remote_addr=("127.0.0.1", port))
        endpoints.append(protocol)
    return endpoints


async def phase(endpoints: list[Endpoint], total: int, workers: int, kind: str,
                stats: dict[str, int]) -> float:
    """Run `total` exchanges of `kind`; each worker cycles through its own endpoints."""

    async def worker(mine: list[Endpoint], count: int) -> None:
        for n in range(count):
            endpoint = mine[n % len(mine)]
            await (endpoint.register(stats) if kind == "register" else endpoint.update(stats))

    share = [total // workers + (1 if w < total % workers else 0) for w in range(workers)]
    started = time.perf_counter()
    await asyncio.gather(*(worker(endpoints[w::workers], share[w]) for w in range(workers)))
    return total / (time.perf_counter() - started)


async def drive(args: argparse.Namespace, port: int, pid: int) -> dict[str, Any]:
    stats = {"retransmissions": 0}
    endpoints = await open_endpoints(args.endpoints, port)
    rss_start = rss_kib(pid)
    registers = max(args.endpoints, args.exchanges // 4)
    register_rate = await phase(endpoints, registers, args.workers, "register", stats)
    updates = args.exchanges - registers
    first_rate = await phase(endpoints, updates // 2, args.workers, "update", stats)
    rss_half = rss_kib(pid)  # after half the exchanges: flat memory means ~ rss_after
    second_rate = await phase(endpoints, updates - updates // 2, args.workers, "update", stats)
    update_rate = 2 / (1 / first_rate + 1 / second_rate)
    rss_after = rss_kib(pid)
    await asyncio.sleep(args.idle)
    rss_idle = rss_kib(pid)
    for endpoint in endpoints:
        endpoint.transport.close()
    return {
        "endpoints": args.endpoints, "workers": args.workers,
        "register_exchanges": registers, "update_exchanges": args.exchanges - registers,
        "register_per_second": round(register_rate, 1),
        "update_per_second": round(update_rate, 1),
        "retransmissions": stats["retransmissions"],
        "server_rss_kib_start": rss_start,
        "server_rss_kib_after_half": rss_half, "exchanges_at_half": registers + updates // 2,
        "server_rss_kib_after_exchanges": rss_after,
        "server_rss_kib_after_idle": rss_idle, "idle_seconds": args.idle,
        "growth_bytes_per_exchange": round((rss_after - rss_start) * 1024 / args.exchanges, 1),
        "dedup": "aiocoap-stock" if args.stock_dedup else "bounded",
    }


async def serve(stock_dedup: bool) -> None:
    """The child: a server until stdin closes."""
    from reconciler.lwm2m.server import Lwm2mServer

    server = Lwm2mServer("127.0.0.1", 0)
    await server.start()
    if stock_dedup:  # drop our instance overrides: aiocoap's own methods apply again
        for tman in server.context.request_interfaces:
            vars(tman.token_interface).pop("_deduplicate_message", None)
            vars(tman.token_interface).pop("_store_response_for_duplicates", None)
    print(server.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    print(len(server.registrations()), flush=True)
    await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, default=200_000)
    parser.add_argument("--endpoints", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--stock-dedup", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.stock_dedup))
        return
    command = [sys.executable, __file__, "--serve"] + (["--stock-dedup"] * args.stock_dedup)
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))}
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                             text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        port = int(child.stdout.readline())
        result = asyncio.run(drive(args, port, child.pid))
        child.stdin.close()
        result["registrations_at_end"] = int(child.stdout.readline())
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()  # only reached when the run failed: the child exits on stdin EOF
        child.wait(timeout=30)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
