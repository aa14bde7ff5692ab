"""A scripted LwM2M device on a raw UDP socket, for peers our simulator will not play:
it answers reads of Objects 3 and 5 from its `values` in the format asked for, records
every request, and lets a subclass decide what a write or an Execute does (or drop it).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiocoap import ACK, CON, Context, Message
from aiocoap.numbers.codes import Code

from reconciler.lwm2m.codecs import ContentFormat, Value, decode, encode
from reconciler.model.lwm2m import FW_PACKAGE_URI, FW_STATE, FW_UPDATE_RESULT, Path

# A device on 1.0 with Object 5 idle (no URI, state Idle, result Initial, pull and push).
START: dict[Path, Value] = {
    Path(3, 0, 0): "acme", Path(3, 0, 3): "1.0", FW_PACKAGE_URI: "", FW_STATE: 0,
    FW_UPDATE_RESULT: 0, Path(5, 0, 9): 0}


class ScriptedDevice(asyncio.DatagramProtocol):
    def __init__(self, values: dict[Path, Value]) -> None:
        self.values = dict(values)
        self.transport: Any = None
        self.requests: list[tuple[float, str, str]] = []  # (monotonic time, code, path)
        self.registered = asyncio.Event()
        self.lifetime = 300  # seconds, the next Register's lt=
        self.downloads: list[asyncio.Task[None]] = []  # package fetches (`pull`)
        self.downloaded_at: float | None = None  # monotonic, when the last fetch ended
        self._mid = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        message = Message.decode(data)
        if message.code == Code.CREATED:
            self.registered.set()
            return
        if message.mtype != CON or not message.code.is_request():
            return
        path = Path(*(int(s) for s in message.opt.uri_path))
        self.requests.append((time.monotonic(), str(message.code), str(path)))
        answer = self.answer(message, path)
        if answer is not None:
            self.transport.sendto(answer.encode())

    def answer(self, message: Message, path: Path) -> Message | None:
        """A read from `values`; anything else 2.04 (and ignored). None: no answer."""
        if message.code != Code.GET:
            return self.reply(message, Code.CHANGED)
        fmt = int(message.opt.accept or ContentFormat.TLV)
        under = {p: v for p, v in self.values.items()
                 if p.segments()[:len(path.segments())] == path.segments()}
        return self.reply(message, Code.CONTENT, encode(fmt, path, under), fmt)

    @staticmethod
    def reply(message: Message, code: Code, payload: bytes = b"",
              fmt: int | None = None) -> Message:
        return Message(_mtype=ACK, _mid=message.mid, _token=message.token, code=code,
                       payload=payload, content_format=fmt)

    def pull(self, message: Message, path: Path) -> bool:
        """When `message` writes a package URI: Downloading, and the package fetched from
        it (Block2 GETs from a socket of its own, as a device pulls), then Downloaded,
        notifying nothing. The fetch is appended to `downloads` (a test gathers them)."""
        if path != FW_PACKAGE_URI or message.code != Code.PUT or not message.payload:
            return False
        fmt = int(message.opt.content_format or 0)
        uri = str(decode(fmt, path, message.payload)[FW_PACKAGE_URI])
        self.values[FW_STATE] = 1
        self.downloads.append(asyncio.get_running_loop().create_task(self._fetch(uri)))
        return True

    async def _fetch(self, uri: str) -> None:
        client = await Context.create_client_context()
        try:
            response = await client.request(Message(code=Code.GET, uri=uri)).response
            assert response.code == Code.CONTENT, response
            self.downloaded_at = time.monotonic()
            self.values[FW_STATE] = 2
        finally:
            await client.shutdown()

    def register(self, endpoint: str) -> None:
        """Send a Register (again, after a 'reboot': a new exchange each time)."""
        self._mid += 1
        self.registered.clear()
        message = Message(_mtype=CON, _mid=self._mid, _token=b"reg%d" % self._mid,
                          code=Code.POST, uri_path=("rd",),
                          uri_query=(f"ep={endpoint}", f"lt={self.lifetime}", "lwm2m=1.1"),
                          content_format=40, payload=b"</3/0>,</5/0>")
        self.transport.sendto(message.encode())
