"""A pull download the link lost is offered again within the attempt: no retry spent, no
backoff (lossy11, bench/README.md's 10 % and 15 % runs).

A real server and a real simulated device whose package URI points at a forwarder on
loopback: the forwarder drops every copy of the device's Block2 GET of block 2, five in a
row, the burst that at 15 % loss each way ended one download in five in the loss
benchmark. The device's own RFC 7252 timers (shortened: 50 ms) give up after the fifth
copy and it says Update Result 4. The server writes the same package URI again a second
later (`engine.pulling`), the device downloads again and ends Current: one attempt, the
whole retry budget left. The loss pattern is fixed (the first five copies of one
request), so the test cannot flake.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import controller_harness as harness
from aiocoap import Message
from aiocoap.numbers.codes import Code
from controller_harness import device_id, states, until

from reconciler.model.status import UpdateState
from reconciler.simulator.coap import Reliability
from reconciler.store import open_reader

Address = tuple[str, int]
LOST_BLOCK = 2  # of 4 (2 KiB in 512-byte blocks)
BURST = 5  # copies dropped: MAX_RETRANSMIT + 1, all the device sends


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, forwarder: LossyForwarder, client: Address) -> None:
        self.forwarder, self.client = forwarder, client
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.forwarder.transport.sendto(data, self.client)


class LossyForwarder(asyncio.DatagramProtocol):
    """Clients' datagrams to `server` through a socket per client, answers back; drops
    the first BURST copies of a GET for block LOST_BLOCK and records every GET."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.server: Address | None = None
        self.upstreams: dict[Address, _Upstream] = {}
        self.dropped = 0
        self.gets: list[tuple[str, int]] = []  # (path, block number) of every GET seen

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    @property
    def port(self) -> int:
        return int(self.transport.get_extra_info("sockname")[1])

    def datagram_received(self, data: bytes, addr: Any) -> None:
        message = Message.decode(data)
        if message.code == Code.GET and message.opt.block2 is not None:
            block = message.opt.block2.block_number
            self.gets.append(("/".join(message.opt.uri_path), block))
            if block == LOST_BLOCK and self.dropped < BURST:
                self.dropped += 1
                return
        client = (str(addr[0]), int(addr[1]))
        upstream = self.upstreams.get(client)
        if upstream is not None and upstream.transport is not None:
            upstream.transport.sendto(data)
            return
        asyncio.get_running_loop().create_task(self._open(client, data))

    async def _open(self, client: Address, first: bytes) -> None:
        assert self.server is not None
        _, upstream = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Upstream(self, client), remote_addr=self.server)
        self.upstreams[client] = cast(_Upstream, upstream)
        upstream.transport.sendto(first)

    def close(self) -> None:
        for upstream in self.upstreams.values():
            upstream.transport.close()
        self.transport.close()


async def test_a_download_the_link_lost_is_offered_again_without_spending_a_retry(
        tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    _, forwarder = await loop.create_datagram_endpoint(LossyForwarder,
                                                       local_addr=("127.0.0.1", 0))
    try:
        repo = harness.DesiredRepo(tmp_path / "repo", count=1, target="2.0")
        # The harness's 3 s download deadline is about what the lost burst and the
        # second's wait before the offer again take (2.2-3.2 s seen), so half the runs
        # timed out right after the offer again; 30 s keeps the deadline out of this test.
        settings = harness.settings_for(repo, tmp_path / "s.db",
                                        public_uri=f"coap://127.0.0.1:{forwarder.port}",
                                        min_download_time=30.0)
        timing = replace(harness.SIM_TIMING, reliability=Reliability(ack_timeout=0.05))
        async with harness.serving(settings) as running:
            forwarder.server = ("127.0.0.1", running.coap_port)
            async with harness.fleet_of(running, harness.specs(1), timing) as fleet:
                ctl = running.controller
                await until(ctl, lambda: states(ctl)[device_id(0)] is UpdateState.CURRENT, 20)
                device = fleet.device(harness.endpoint(0))
                assert device.version == "2.0"
    finally:
        forwarder.close()
    assert forwarder.dropped == BURST
    progress = ctl.decider.index.get(device_id(0))
    assert progress is not None
    max_retries = settings.engine_config().max_retries
    assert (progress.attempts, progress.retries_left, progress.resumes) == (1, max_retries, 1)
    # the same offer (one package URI) downloaded twice from block 0
    assert len({path for path, _ in forwarder.gets}) == 1
    assert [block for _, block in forwarder.gets].count(0) == 2
    reader = open_reader(tmp_path / "s.db")
    try:
        history = [e.message for e in reader.events(device_id(0))]
    finally:
        reader.close()
    assert any("lost the connection during the download (Update Result 4); offering it "
               "again (interruption 1 of at most 6, no retry spent)" in m for m in history), (
        history)
    assert not any("retry scheduled" in m for m in history), history
