"""A device that does not follow Object 5 ends failed, saying what it did wrong, after a
bounded number of requests (issue 8 item 3).

The device is a scripted peer on a raw UDP socket, not our simulator: its Object 5
starts in state 1 (Downloading), it answers every write with 2.04 and ignores it, and an
Execute changes nothing (the skeleton firmware object of a widely used open-source
client does exactly this). Against it the controller used to loop at ~1,160 requests
per second while the API showed Pending.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from aiocoap import ACK, CON, Message
from aiocoap.numbers.codes import Code
from controller_harness import (
    DesiredRepo,
    device_id,
    endpoint,
    serving,
    settings_for,
    states,
    until,
)

from reconciler.lwm2m.codecs import ContentFormat, Value, encode
from reconciler.model.lwm2m import Path as LwPath
from reconciler.model.status import UpdateState

VALUES: dict[LwPath, Value] = {
    LwPath(3, 0, 0): "skeleton", LwPath(3, 0, 3): "1.0",
    LwPath(5, 0, 1): "", LwPath(5, 0, 3): 1, LwPath(5, 0, 5): 0, LwPath(5, 0, 9): 2}


class StubbornDevice(asyncio.DatagramProtocol):
    """Answers reads from VALUES (which nothing changes), every other request with 2.04;
    records the time of every request."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.requests: list[tuple[float, str, str]] = []
        self.registered = asyncio.Event()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        message = Message.decode(data)
        if message.code == Code.CREATED:
            self.registered.set()
            return
        if message.mtype != CON or not message.code.is_request():
            return
        path = LwPath(*(int(s) for s in message.opt.uri_path))
        self.requests.append((time.monotonic(), str(message.code), str(path)))
        answer = Message(_mtype=ACK, _mid=message.mid, _token=message.token, code=Code.CHANGED)
        if message.code == Code.GET:
            fmt = int(message.opt.accept or ContentFormat.TLV)
            under = {p: v for p, v in VALUES.items()
                     if p.segments()[:len(path.segments())] == path.segments()}
            answer = Message(_mtype=ACK, _mid=message.mid, _token=message.token,
                             code=Code.CONTENT, payload=encode(fmt, path, under),
                             content_format=fmt)
        self.transport.sendto(answer.encode())

    def register(self, endpoint: str) -> None:
        message = Message(_mtype=CON, _mid=1, _token=b"reg1", code=Code.POST, uri_path=("rd",),
                          uri_query=(f"ep={endpoint}", "lt=300", "lwm2m=1.1"),
                          content_format=40, payload=b"</3/0>,</5/0>")
        self.transport.sendto(message.encode())


def most_in_any_window(times: list[float], window: float) -> int:
    return max((sum(1 for t in times if start <= t < start + window) for start in times),
               default=0)


async def test_a_device_that_ignores_object_5_ends_failed_within_bounded_requests(
        tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1, target="2.0")
    settings = settings_for(repo, tmp_path / "s.db", reset_delay=0.2)
    async with serving(settings) as running:
        loop = asyncio.get_running_loop()
        transport, device = await loop.create_datagram_endpoint(
            StubbornDevice, remote_addr=("127.0.0.1", running.coap_port))
        try:
            device.register(endpoint(0))
            await asyncio.wait_for(device.registered.wait(), 5)
            ctl = running.controller
            await until(ctl, lambda: states(ctl)[device_id(0)] is UpdateState.UPDATE_FAILED,
                        20)
            done = len(device.requests)
            # A resync looks at every device again: a terminal one gets no request.
            ctl.queue.add(device_id(0))
            await ctl.queue.idle()
        finally:
            transport.close()
    progress = ctl.decider.index.get(device_id(0))
    assert progress is not None and progress.state is UpdateState.UPDATE_FAILED
    assert progress.message == ("/5/0/3 stayed 1 after the URI was cleared 3 times: "
                                "the device does not follow Object 5")
    writes = [r for r in device.requests if r[1:] == ("PUT", "/5/0/1")]
    assert len(writes) == 3  # the three resets, never a URI
    assert len(device.requests) == done <= 20
    # resets 0.2 s, 0.4 s, 0.8 s apart: never a burst (it was ~1,160 a second)
    assert most_in_any_window([t for t, _, _ in device.requests], 0.1) <= 6
