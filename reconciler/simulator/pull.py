"""Block2 GETs of one firmware download on a raw UDP socket: the simulator's hot path.

A pull is ~128 request/response pairs per device and a fleet pulls a thousand at once,
so aiocoap `Message` objects and an `asyncio.wait` per request cost more than the block
itself (profiled: the simulator, not the server, bounded the 1,000-device rollout).
`BlockClient` builds each GET from bytes and parses answers with `lwm2m.coapframe`,
retransmits on one timer per request (RFC 7252 §4.2: ACK_TIMEOUT x RANDOM_FACTOR,
doubling, MAX_RETRANSMIT times) and takes piggybacked or separate responses (an empty
ACK, then a Confirmable it acknowledges). One request at a time, and one timer per
client rather than one per request: an answer usually comes long before ACK_TIMEOUT, so
the timer re-arms for the request then current instead of being created and cancelled
for each of ~128 blocks. Used by `transfer`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import NamedTuple, cast

from reconciler.lwm2m import coapframe
from reconciler.lwm2m.firmware import parse_block_value
from reconciler.simulator.coap import Addr, Reliability, RequestReset, RequestTimeout
from reconciler.simulator.dtls_client import open_datagram

CLOCK_SLACK = 0.001  # a timer may run this much before its time: due, not early


class Answer(NamedTuple):
    code: int  # the raw code byte: class << 5 | detail
    block2: tuple[int, bool, int] | None  # (num, more, szx)
    size2: int | None
    etag: bytes | None
    payload: bytes

    @property
    def successful(self) -> bool:
        return self.code >> 5 == 2


class _Exchange:
    __slots__ = ("acked", "data", "due", "future", "left", "mid", "timeout", "token")

    def __init__(self, mid: int, token: bytes, data: bytes, timeout: float,
                 left: int) -> None:
        self.mid, self.token, self.data = mid, token, data
        self.acked = False  # an empty ACK came: a separate response follows
        self.future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.timeout, self.left = timeout, left  # this wait, retransmissions still allowed
        self.due = 0.0  # loop time at which this wait ends


class BlockClient(asyncio.DatagramProtocol):
    def __init__(self, remote: Addr, reliability: Reliability) -> None:
        self._remote, self._rel = remote, reliability
        self._transport: asyncio.DatagramTransport | None = None
        self._mid = random.randrange(0x10000)
        self._token = random.randrange(1 << 32)
        self._exchange: _Exchange | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._uri_key: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        self._uri_encoded = b""

    async def open(self, host: str, psk: tuple[bytes, bytes] | None = None) -> None:
        await open_datagram(self, host, psk)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP and the like: the retransmission timer decides

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self._fail(RequestTimeout("socket closed"))

    async def get(self, path: Sequence[str], query: Sequence[str], block2: int) -> Answer:
        """GET with the Block2 option value `block2` (num << 4 | szx); the answer."""
        self._mid = (self._mid + 1) & 0xFFFF
        self._token = (self._token + 1) & 0xFFFFFFFF
        token = self._token.to_bytes(4, "big")
        data = coapframe.build(coapframe.CON, coapframe.GET, self._mid, token,
                          self._uri_options(path, query) + _block2_option(block2, path, query))
        timeout = self._rel.ack_timeout * random.uniform(1.0, self._rel.random_factor)
        exchange = self._exchange = _Exchange(self._mid, token, data, timeout,
                                              self._rel.max_retransmit)
        self._transmit(exchange)
        try:
            return await exchange.future
        finally:
            self._exchange = None

    def _uri_options(self, path: Sequence[str], query: Sequence[str]) -> bytes:
        """Uri-Path and Uri-Query encoded once per download: only Block2 changes."""
        key = (tuple(path), tuple(query))
        if self._uri_key != key:
            options = [(coapframe.URI_PATH, segment.encode()) for segment in path]
            options += [(coapframe.URI_QUERY, item.encode()) for item in query]
            self._uri_key, self._uri_encoded = key, coapframe.encode_options(options)
        return self._uri_encoded

    def _transmit(self, exchange: _Exchange) -> None:
        if self._transport is None:
            self._fail(RequestTimeout("socket closed"))
            return
        if not exchange.acked:
            self._transport.sendto(exchange.data, self._remote)
        loop = asyncio.get_running_loop()
        exchange.due = loop.time() + exchange.timeout
        self._arm(loop, exchange.due)

    def _arm(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        """Make the timer fire no later than `due` (it re-arms itself if early)."""
        timer = self._timer
        if timer is not None:
            if timer.when() <= due:
                return
            timer.cancel()
        self._timer = loop.call_at(due, self._tick)

    def _tick(self) -> None:
        self._timer = None
        exchange = self._exchange
        if exchange is None or exchange.future.done():
            return  # idle: the next request arms the timer again
        loop = asyncio.get_running_loop()
        if loop.time() < exchange.due - CLOCK_SLACK:
            self._arm(loop, exchange.due)  # armed for an earlier request, answered since
        elif exchange.left == 0:
            host, port = self._remote
            exchange.future.set_exception(RequestTimeout(f"no answer from {host}:{port}"))
        else:
            exchange.left -= 1
            exchange.timeout *= 2
            self._transmit(exchange)

    def _fail(self, exc: Exception) -> None:
        exchange = self._exchange
        if exchange is not None and not exchange.future.done():
            exchange.future.set_exception(exc)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        remote: Addr = (str(addr[0]), int(addr[1]))
        try:
            message = coapframe.parse(data)
        except coapframe.FormatError:
            self._reply(coapframe.reset_for(data), remote)  # RFC 7252 §4.2
            return
        exchange = self._exchange
        if message.code == coapframe.EMPTY:
            self._on_empty(message, exchange, remote)
        elif message.code >= 0x40:  # a response; requests are not ours to answer
            self._on_response(message, exchange, remote)

    def _on_empty(self, message: coapframe.Datagram, exchange: _Exchange | None,
                  remote: Addr) -> None:
        if message.mtype == coapframe.CON:  # CoAP ping
            self._reply(coapframe.reset(message.mid), remote)
        elif exchange is None or message.mid != exchange.mid:
            return
        elif message.mtype == coapframe.ACK:
            exchange.acked = True
        elif message.mtype == coapframe.RST and not exchange.future.done():
            exchange.future.set_exception(RequestReset())

    def _on_response(self, message: coapframe.Datagram, exchange: _Exchange | None,
                     remote: Addr) -> None:
        ours = exchange is not None and message.token == exchange.token and (
            message.mtype != coapframe.ACK or message.mid == exchange.mid)
        if message.mtype == coapframe.CON:  # separate: acknowledged; unknown: reset (§5.3.2)
            kind = coapframe.ACK if ours else coapframe.RST
            self._reply(coapframe.build(kind, coapframe.EMPTY, message.mid, b""), remote)
        if ours and exchange is not None and not exchange.future.done():
            exchange.future.set_result(_answer(message))

    def _reply(self, data: bytes | None, remote: Addr) -> None:
        if data is not None and self._transport is not None:
            self._transport.sendto(data, remote)


def _block2_option(value: int, path: Sequence[str], query: Sequence[str]) -> bytes:
    """Block2 (23) after the last Uri-Path (11) or Uri-Query (15) option, if any."""
    previous = coapframe.URI_QUERY if query else coapframe.URI_PATH if path else 0
    return coapframe.encode_options([(coapframe.BLOCK2 - previous, coapframe.uint(value))])


def _answer(message: coapframe.Datagram) -> Answer:
    block2 = size2 = etag = None
    for number, value in message.options:
        if number == coapframe.BLOCK2 and len(value) <= 3:
            block2 = parse_block_value(int.from_bytes(value, "big"))
        elif number == coapframe.SIZE2:
            size2 = int.from_bytes(value, "big")
        elif number == coapframe.ETAG and etag is None:
            etag = value
    return Answer(message.code, block2, size2, etag, message.payload)
