"""A simulated device answers a retransmission from its cache, a new exchange afresh."""

from __future__ import annotations

import asyncio

from aiocoap import ACK, CON, CONTENT, GET, Message

from reconciler.simulator.coap import Addr, Endpoint


class Raw(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[Message] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.put_nowait(Message.decode(data))

    async def next(self) -> Message:
        return await asyncio.wait_for(self.received.get(), 5)


def con_get(mid: int, token: bytes) -> bytes:
    message = Message(code=GET, uri_path=("3", "0", "3"))
    message.mtype, message.mid, message.token = CON, mid, token
    return bytes(message.encode())


async def test_a_request_reusing_an_answered_message_id_with_a_new_token_is_handled_afresh(
) -> None:
    calls: list[bytes] = []

    def handler(message: Message, remote: Addr) -> Message:
        calls.append(message.token)
        return Message(code=CONTENT, payload=b"v%d" % len(calls))

    device = Endpoint(handler)
    await device.open()
    loop = asyncio.get_running_loop()
    transport, raw = await loop.create_datagram_endpoint(Raw, local_addr=("127.0.0.1", 0))
    to = ("127.0.0.1", device.local_port)
    try:
        transport.sendto(con_get(42, b"old"), to)
        first = await raw.next()
        transport.sendto(con_get(42, b"new"), to)
        second = await raw.next()
        transport.sendto(con_get(42, b"new"), to)  # a retransmission of the new one
        third = await raw.next()
        assert calls == [b"old", b"new"]
        assert (first.token, first.payload) == (b"old", b"v1")
        assert (second.mtype, second.mid, second.token, second.payload) == (
            ACK, 42, b"new", b"v2")
        assert (third.token, third.payload) == (b"new", b"v2")
    finally:
        transport.close()
        device.close()
