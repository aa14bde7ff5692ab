"""bench/udp_proxy.py's link delay (rtt11): the loss benchmark's proxy gives the link a
round trip without serializing it.

A real UDP echo server on loopback behind the proxy, run as the benchmark runs it (a
subprocess, `--delay` in ms): an answer takes at least twice the one-way delay, and two
datagrams sent together come back together (each waits on its own timer, not behind the
other). And in-process: jitter draws its own random numbers, so a seed drops and
duplicates the same datagrams with or without jitter.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

from builders.ports import free_udp_port

from bench.udp_proxy import Proxy

PROXY = str(Path(__file__).parents[3] / "bench" / "udp_proxy.py")
DELAY_S = 0.3  # one way


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


class _Client(asyncio.DatagramProtocol):
    """Records when each answer arrived."""

    def __init__(self) -> None:
        self.arrived: dict[bytes, float] = {}
        self.event = asyncio.Event()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.arrived.setdefault(data, time.monotonic())
        self.event.set()

    async def answer(self, data: bytes, timeout: float) -> float | None:
        async with asyncio.timeout(timeout):
            while data not in self.arrived:
                self.event.clear()
                await self.event.wait()
        return self.arrived[data]


async def test_delay_holds_each_datagram_without_serializing() -> None:
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
    echo_port = echo.get_extra_info("sockname")[1]
    listen = free_udp_port()
    proxy = await asyncio.create_subprocess_exec(
        sys.executable, PROXY, str(listen), str(echo_port), "--loss", "0", "--dup", "0",
        "--delay", str(DELAY_S * 1000))
    client_transport, client = await loop.create_datagram_endpoint(
        _Client, remote_addr=("127.0.0.1", listen))
    try:
        # Until the proxy listens (it starts in a subprocess): bounded probes
        for attempt in range(40):
            probe = f"probe-{attempt}".encode()
            client_transport.sendto(probe)
            try:
                await client.answer(probe, 4 * DELAY_S)
                break
            except TimeoutError:
                assert proxy.returncode is None, "the proxy exited"
        else:
            raise AssertionError("the proxy never answered")

        sent = time.monotonic()
        client_transport.sendto(b"first")
        client_transport.sendto(b"second")
        first = await client.answer(b"first", 10 * DELAY_S)
        second = await client.answer(b"second", 10 * DELAY_S)
        assert first is not None and second is not None
        # Held DELAY_S up and DELAY_S down
        assert first - sent >= 2 * DELAY_S
        assert second - sent >= 2 * DELAY_S
        # Together: one delay queue would put the second a whole delay (or more) behind
        assert abs(second - first) < DELAY_S / 2
    finally:
        client_transport.close()
        echo.close()
        proxy.terminate()
        await proxy.wait()


async def test_jitter_leaves_the_loss_and_dup_decisions_alone() -> None:
    """The same seed drops and duplicates the same datagrams with jitter as without, and
    every datagram it lets through is sent, reordered or not."""

    async def run(jitter: float) -> tuple[list[str], list[bytes]]:
        trace = io.StringIO()
        proxy = Proxy(("127.0.0.1", 9), loss=0.3, dup=0.3, seed=7, trace=trace,
                      jitter=jitter)
        sent: list[bytes] = []
        done = asyncio.Event()
        expected = 0

        def send(data: bytes) -> None:
            sent.append(data)
            if len(sent) == expected:
                done.set()

        for i in range(200):
            proxy.forward(str(i).encode(), "up", send, ("127.0.0.1", 1))
        expected = 200 - proxy.counts["up_dropped"] + proxy.counts["up_duplicated"]
        if len(sent) < expected:  # with jitter: on their timers
            async with asyncio.timeout(5):
                await done.wait()
        fates = [json.loads(line)["fate"] for line in trace.getvalue().splitlines()]
        return fates, sent

    fates, sent = await run(0.0)
    jittered_fates, jittered_sent = await run(0.005)
    assert {"dropped", "duplicated", "sent"} == set(fates)
    assert jittered_fates == fates
    assert sorted(jittered_sent) == sorted(sent)
