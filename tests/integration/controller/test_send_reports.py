"""A device's Send (LwM2M 1.1+ `POST /dp`) feeds the controller's reports, as a Notify does."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiocoap import Code, Message
from aiocoap.numbers.types import CON
from controller_harness import DesiredRepo, device_id, endpoint, serving, settings_for

SENML_JSON, LINK_FORMAT = 110, 40


class SilentDevice(asyncio.DatagramProtocol):
    """A raw UDP peer that registers and sends but answers nothing the server asks, so
    only its Send can tell the controller anything."""

    def __init__(self) -> None:
        self.answers: dict[bytes, asyncio.Future[Message]] = {}
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        message = Message.decode(data)
        waiting = self.answers.get(message.token)
        if not message.code.is_request() and waiting is not None and not waiting.done():
            waiting.set_result(message)

    async def ask(self, message: Message, mid: int) -> Message:
        message.mtype, message.mid, message.token = CON, mid, mid.to_bytes(2, "big")
        answer = self.answers[message.token] = asyncio.get_running_loop().create_future()
        self.transport.sendto(message.encode())
        return await asyncio.wait_for(answer, 5)


async def test_values_a_device_sends_land_in_its_report(tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    async with serving(settings_for(repo, tmp_path / "s.db")) as running:
        ctl = running.controller
        delivered: asyncio.Queue[str] = asyncio.Queue()
        # Subscribed after the controller: called once the controller has taken the Send.
        ctl.server.subscribe_send(lambda ep, _values: delivered.put_nowait(ep))
        transport, device = await asyncio.get_running_loop().create_datagram_endpoint(
            SilentDevice, remote_addr=("127.0.0.1", running.coap_port))
        try:
            registered = await device.ask(Message(
                code=Code.POST, uri_path=("rd",), content_format=LINK_FORMAT,
                uri_query=(f"ep={endpoint(0)}", "lt=60", "lwm2m=1.1"),
                payload=b"</3/0>,</5/0>"), 1)
            assert registered.code == Code.CREATED
            sent = await device.ask(Message(
                code=Code.POST, uri_path=("dp",), content_format=SENML_JSON,
                payload=b'[{"bn":"/3/0/","n":"3","vs":"9.9"},{"bn":"/5/0/","n":"3","v":1}]',
            ), 2)
            assert sent.code == Code.CHANGED
            assert await asyncio.wait_for(delivered.get(), 5) == endpoint(0)
        finally:
            transport.close()
        report = ctl.reports.get(device_id(0))
        assert report is not None
        assert (report.firmware_version, report.fw_state) == ("9.9", 1)
