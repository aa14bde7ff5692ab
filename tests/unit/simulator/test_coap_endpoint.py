"""The simulator's CoAP message layer on real loopback sockets."""

from __future__ import annotations

import asyncio

import aiocoap
import pytest
from aiocoap import ACK, CON, CONTENT, EMPTY, GET, RST, Message

from reconciler.simulator.coap import Addr, Endpoint, Reliability, RequestTimeout

QUICK = Reliability(ack_timeout=0.05, random_factor=1.0, max_retransmit=2)


class Raw(asyncio.DatagramProtocol):
    """A bare socket that queues what it receives."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[Message] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.put_nowait(Message.decode(data))


async def raw_socket() -> tuple[asyncio.DatagramTransport, Raw]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        Raw, local_addr=("127.0.0.1", 0))
    return transport, protocol


def con_get(mid: int) -> Message:
    message = Message(code=GET, uri_path=("3", "0", "3"))
    message.mtype, message.mid, message.token = CON, mid, b"tk"
    return message


async def test_a_retransmitted_request_gets_the_same_answer_without_a_second_handling() -> None:
    calls: list[int] = []

    def handler(message: Message, remote: Addr) -> Message:
        calls.append(message.mid)
        return Message(code=CONTENT, payload=b"v")

    device = Endpoint(handler)
    await device.open()
    transport, raw = await raw_socket()
    try:
        for _ in range(2):
            transport.sendto(con_get(42).encode(), ("127.0.0.1", device.local_port))
        first, second = await raw.received.get(), await raw.received.get()
        assert calls == [42]
        assert (first.mtype, first.mid, first.token, first.payload) == (ACK, 42, b"tk", b"v")
        assert (second.mtype, second.mid, second.payload) == (ACK, 42, b"v")
    finally:
        transport.close()
        device.close()


async def test_malformed_confirmables_and_pings_are_reset_and_the_socket_keeps_serving() -> None:
    device = Endpoint(lambda m, r: Message(code=CONTENT))
    await device.open()
    transport, raw = await raw_socket()
    try:
        # CON, token length 8 announced but absent; an option cut short: unparseable.
        for mid, datagram in ((7, b"\x48\x01\x00\x07"), (6, b"\x40\x01\x00\x06\xd1")):
            transport.sendto(datagram, ("127.0.0.1", device.local_port))
            reset = await raw.received.get()
            assert (reset.mtype, reset.code, reset.mid) == (RST, EMPTY, mid)
        ping = Message(code=EMPTY)
        ping.mtype, ping.mid = CON, 8
        transport.sendto(ping.encode(), ("127.0.0.1", device.local_port))
        assert (await raw.received.get()).mtype == RST
        transport.sendto(con_get(9).encode(), ("127.0.0.1", device.local_port))
        assert (await raw.received.get()).code == CONTENT
    finally:
        transport.close()
        device.close()


async def test_a_separate_response_is_acknowledged_and_returned() -> None:
    transport, raw = await raw_socket()
    client = Endpoint(reliability=QUICK)
    await client.open()
    server: Addr = transport.get_extra_info("sockname")[:2]
    try:
        pending = asyncio.ensure_future(client.request(Message(code=GET, uri_path=("x",)),
                                                       server))
        request = await raw.received.get()
        empty = Message(code=EMPTY)
        empty.mtype, empty.mid = ACK, request.mid
        transport.sendto(empty.encode(), ("127.0.0.1", client.local_port))
        late = Message(code=CONTENT, payload=b"late")
        late.mtype, late.mid, late.token = CON, 999, request.token
        transport.sendto(late.encode(), ("127.0.0.1", client.local_port))
        assert (await pending).payload == b"late"
        ack = await raw.received.get()
        assert (ack.mtype, ack.mid) == (ACK, 999)
    finally:
        transport.close()
        client.close()


async def test_an_unanswered_request_is_retransmitted_then_times_out() -> None:
    transport, raw = await raw_socket()
    client = Endpoint(reliability=QUICK)
    await client.open()
    try:
        with pytest.raises(RequestTimeout):
            await client.request(Message(code=aiocoap.POST, uri_path=("rd",)),
                                 transport.get_extra_info("sockname")[:2])
        sent = [raw.received.get_nowait() for _ in range(raw.received.qsize())]
        assert len(sent) == 1 + QUICK.max_retransmit
        assert len({m.mid for m in sent}) == 1
    finally:
        transport.close()
        client.close()


@pytest.mark.parametrize(("answer", "delivered"), [(ACK, True), (RST, False)])
async def test_a_notification_ends_with_an_ack_or_reports_a_reset(
        answer: object, delivered: bool) -> None:
    transport, raw = await raw_socket()
    device = Endpoint(reliability=QUICK)
    await device.open()
    try:
        notification = Message(code=CONTENT, observe=3, payload=b"2")
        notification.token = b"ob"
        sent = asyncio.ensure_future(device.notify(notification,
                                                   transport.get_extra_info("sockname")[:2]))
        received = await raw.received.get()
        assert (received.mtype, received.opt.observe, received.token) == (CON, 3, b"ob")
        reply = Message(code=EMPTY)
        reply.mtype, reply.mid = answer, received.mid
        transport.sendto(reply.encode(), ("127.0.0.1", device.local_port))
        assert await sent is delivered
    finally:
        transport.close()
        device.close()
