"""The firmware fast path: answers GET /fw/<token> with Block2 straight from datagrams.

aiocoap's message layer costs far more per block than the block itself (message objects,
option views, exchange bookkeeping), so block GETs are answered here with a pre-encoded
response tail (options + payload, cached per image and block) behind a 4-byte header.
The request every download repeats (GET /fw/<token> with Block2 and nothing else) is
recognised by slicing the datagram, without a parse (`_usual`); anything else, and
anything that is not a cached block of a live offer, goes through the full parser.
Spec rules kept: CON -> piggybacked ACK with the same message id and token, NON -> NON
with a fresh message id; a duplicate is simply answered again (GET is idempotent);
malformed CONs get a Reset, bad requests a CoAP error code, nothing ever raises. Installed
by `Lwm2mServer` beside aiocoap on its socket (`install_fast_path`); bench/blockserver.py
runs it on a socket of its own for tests and the benchmark.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import socket
from collections.abc import Callable
from typing import Any, Final

from . import batchio, coapframe
from .aiocoap_adapter import Receive, UdpSocket, udp_sockets
from .firmware import (
    OPAQUE,
    BlockError,
    FirmwareRepository,
    Image,
    block_value,
    parse_block_value,
    select_block,
)

log = logging.getLogger(__name__)

PASS: Final = b"pass"  # shared socket: not a firmware request, hand it to aiocoap
BLOCK_CACHE_CAP = 4096  # encoded responses kept per image before the cache starts over
_IGNORED_OPTIONS = frozenset(
    {coapframe.URI_HOST, coapframe.ETAG, coapframe.OBSERVE, coapframe.URI_PORT,
     coapframe.URI_QUERY, coapframe.SIZE2}
)
# Datagrams read per wake-up of a socket: one epoll round serves a burst of block GETs
# (a 10 ms poll at 10,000 blocks/s finds ~100), ~2 ms of the loop at most.
DRAIN = 256
# While blocks are served, the shared socket is read this often (`_Reader`).
POLL_INTERVAL = 0.01
_ERROR_CODES = {"4.00": coapframe.BAD_REQUEST, "4.02": coapframe.BAD_OPTION}
NO_OFFER = "no firmware offered at this path"


class _ToAiocoap(Exception):
    """An offer another node may have handed out: aiocoap's resource looks it up."""


class _Refusal(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class FastPath:
    """Turns one datagram into the reply datagram (or None, or PASS)."""

    def __init__(self, repository: FirmwareRepository, *, remote: bool = False) -> None:
        """`remote`: a token unknown here may be another node's offer, looked up by
        aiocoap's resource (the plain listener; never inside a DTLS session)."""
        self._repository = repository
        self._remote = remote
        self._prefix = repository.prefix.encode()
        self._mid = secrets.randbelow(0x10000)
        # The encoded first Uri-Path option (the prefix) of a block GET, and the first
        # two bytes of a piggybacked 2.05 for each token length.
        self._prefix_option = coapframe.encode_options([(coapframe.URI_PATH, self._prefix)])
        self._content_heads = [bytes((0x60 | n, coapframe.CONTENT)) for n in range(9)]

    def handle(self, data: bytes, *, exclusive: bool = True,
               allowed: Callable[[str], bool] | None = None) -> bytes | None:
        """`allowed(token)`: whether this peer may read the offer at token (a DTLS
        session's endpoint must be the offer's); a refused token is answered 4.04."""
        usual = self._usual(data, allowed)
        if usual is not None:
            return usual
        try:
            message = coapframe.parse(data)
        except coapframe.FormatError:
            return coapframe.reset_for(data) if exclusive else PASS
        if not exclusive and not self._is_ours(message):
            return PASS
        try:
            return self._respond(message, allowed)
        except _ToAiocoap:
            return PASS

    def _usual(self, data: bytes, allowed: Callable[[str], bool] | None) -> bytes | None:
        """The answer to a CON or NON GET whose options are exactly Uri-Path <prefix>,
        Uri-Path <token> and at most one Block2, for a block of a live offer already
        encoded; None for anything else. Read by slicing, since it is nearly every
        datagram of a download; what it declines, `_respond` decides in full."""
        first = data[0] if data else 0
        tkl = first & 0x0F
        # version 1, CON or NON, token length 0-8, GET
        if first & 0xE0 != 0x40 or tkl > 8 or len(data) < 4 or data[1] != coapframe.GET:
            return None
        at = 4 + tkl + len(self._prefix_option)
        if len(data) <= at or data[4 + tkl : at] != self._prefix_option:
            return None
        nibble = data[at]  # the second Uri-Path: option delta 0
        if nibble < 13:
            start, end = at + 1, at + 1 + nibble
        elif nibble == 13 and at + 1 < len(data):
            start = at + 2
            end = start + 13 + data[at + 1]
        else:
            return None
        rest = len(data) - end  # nothing, or Block2 (delta 12, 0-3 bytes) alone
        if rest == 0:
            key = -1
        elif 0 < rest <= 4 and data[end] == 0xC0 | (rest - 1):
            key = int.from_bytes(data[end + 1 :], "big") & ~0x08  # M means nothing here
        else:
            return None
        try:
            token = data[start:end].decode()
        except UnicodeDecodeError:
            return None
        repository = self._repository
        offer = repository.lookup(token)
        if offer is None:
            return None
        if allowed is not None and not allowed(token):
            tail = coapframe.tail((), NO_OFFER.encode())
            return self._reply(data, tkl, coapframe.NOT_FOUND, tail)
        image = repository.image(offer.image_id)
        if image is None or (cached := image.blocks.get(key)) is None:
            return None  # a block not encoded yet, or an error: `_content` answers it
        repository.block_sent(cached[1])
        if key in image.final:  # once per download: a set lookup on the hot path
            repository.final_block_sent(token)
        if first & 0x10:  # NON
            return self._reply(data, tkl, coapframe.CONTENT, cached[0])
        return self._content_heads[tkl] + data[2 : 4 + tkl] + cached[0]

    def _reply(self, data: bytes, tkl: int, code: int, tail: bytes) -> bytes:
        """The answer to the request `data` (CON: piggybacked ACK; NON: NON)."""
        token = data[4 : 4 + tkl]
        if not data[0] & 0x10:
            return coapframe.build(coapframe.ACK, code, (data[2] << 8) | data[3], token, tail)
        self._mid = (self._mid + 1) & 0xFFFF
        return coapframe.build(coapframe.NON, code, self._mid, token, tail)

    def _is_ours(self, message: coapframe.Datagram) -> bool:
        if not 1 <= message.code <= 31:
            return False
        return next(iter(message.values(coapframe.URI_PATH)), None) == self._prefix

    def _respond(self, message: coapframe.Datagram,
                 allowed: Callable[[str], bool] | None = None) -> bytes | None:
        if message.mtype in (coapframe.ACK, coapframe.RST):
            return None  # the fast path never sends Confirmables of its own
        if message.code == coapframe.EMPTY or not 1 <= message.code <= 31:
            # CoAP ping (empty CON) or a response we never asked for: Reset (§4.2, §4.3).
            return coapframe.reset(message.mid) if message.mtype == coapframe.CON else None
        try:
            code, tail = coapframe.CONTENT, self._content(message, allowed)
        except _Refusal as refusal:
            code, tail = refusal.code, coapframe.tail((), str(refusal).encode())
        if message.mtype == coapframe.CON:
            return coapframe.build(coapframe.ACK, code, message.mid, message.token, tail)
        self._mid = (self._mid + 1) & 0xFFFF
        return coapframe.build(coapframe.NON, code, self._mid, message.token, tail)

    def _content(self, message: coapframe.Datagram,
                 allowed: Callable[[str], bool] | None) -> bytes:
        path, block2 = _read_options(message)
        if message.code != coapframe.GET:
            raise _Refusal(coapframe.METHOD_NOT_ALLOWED, "firmware is only read with GET")
        image = self._image(path, allowed)
        key = -1 if block2 is None else block2[0] << 4 | block2[1]
        cached = image.blocks.get(key)
        if cached is None:
            cached = self._encode_block(image, block2, key)
            if len(image.blocks) >= BLOCK_CACHE_CAP:
                image.blocks.clear()
            image.blocks[key] = cached
        self._repository.block_sent(cached[1])
        if key in image.final:
            self._repository.final_block_sent(path[1].decode())
        return cached[0]

    def _encode_block(self, image: Image, block2: tuple[int, int] | None,
                      key: int) -> tuple[bytes, int]:
        """Options and payload of the answer to `block2` and the payload's length,
        cached on the shared image (`key` noted in `image.final` when it ends it)."""
        try:
            choice = select_block(len(image.data), block2, self._repository.max_szx)
        except BlockError as exc:
            raise _Refusal(_ERROR_CODES[exc.code], str(exc)) from None
        options = [(coapframe.ETAG, image.etag), (coapframe.CONTENT_FORMAT, coapframe.uint(OPAQUE))]
        options.append((coapframe.SIZE2, coapframe.uint(len(image.data))))
        if choice.blockwise:
            value = block_value(choice.num, choice.more, choice.szx)
            options.append((coapframe.BLOCK2, coapframe.uint(value)))
        payload = image.data[choice.start : choice.end]
        if not choice.more:
            image.final.add(key)
        return coapframe.tail(options, payload), len(payload)

    def _image(self, path: list[bytes], allowed: Callable[[str], bool] | None) -> Image:
        if len(path) == 2 and path[0] == self._prefix:
            try:
                token = path[1].decode()
            except UnicodeDecodeError:
                raise _Refusal(coapframe.BAD_REQUEST, "Uri-Path is not UTF-8") from None
            if self._repository.lookup(token) is not None:
                image = None if allowed is not None and not allowed(token) \
                    else self._repository.served(token)
                if image is not None:
                    return image
            # `allowed` is about offers filed here: one unknown here may be another
            # node's, which the plain listener looks up (a DTLS session only serves its own).
            elif self._remote and (remote := self._repository.remote) is not None \
                    and remote.may_have(token):
                raise _ToAiocoap
        raise _Refusal(coapframe.NOT_FOUND, NO_OFFER)


def _read_options(message: coapframe.Datagram) -> tuple[list[bytes], tuple[int, int] | None]:
    """Uri-Path segments and Block2 (num, szx); refuses what RFC 7252 §5.4.1 says to."""
    path: list[bytes] = []
    block2: tuple[int, int] | None = None
    for number, value in message.options:
        if number == coapframe.URI_PATH:
            path.append(value)
        elif number == coapframe.BLOCK2:
            if len(value) > 3 or block2 is not None:
                raise _Refusal(coapframe.BAD_OPTION, "Block2 must be one option of 0-3 bytes")
            num, _more, szx = parse_block_value(int.from_bytes(value, "big"))
            block2 = (num, szx)
        elif number == coapframe.ACCEPT:
            if int.from_bytes(value, "big") != OPAQUE:
                raise _Refusal(coapframe.NOT_ACCEPTABLE,
                               "firmware is application/octet-stream (42)")
        elif number in (coapframe.PROXY_URI, coapframe.PROXY_SCHEME):
            raise _Refusal(coapframe.PROXYING_NOT_SUPPORTED, "this is not a proxy")
        elif number & 1 and number not in _IGNORED_OPTIONS:
            raise _Refusal(coapframe.BAD_OPTION, f"unrecognised critical option {number}")
    return path, block2


def answer(fast: FastPath, data: bytes, *, exclusive: bool,
           allowed: Callable[[str], bool] | None = None) -> bytes | None:
    """`fast.handle`, but a bug costs one answer (a Reset for a CON), never the server."""
    try:
        return fast.handle(data, exclusive=exclusive, allowed=allowed)
    except Exception:
        log.exception("firmware fast path failed on a %d-byte datagram", len(data))
        return coapframe.reset_for(data)


def install_fast_path(context: Any, repository: FirmwareRepository,
                      allowed: Callable[[str], bool] | None = None) -> int:
    """Answer /fw block GETs on an aiocoap server context's UDP sockets before aiocoap
    sees them; everything else goes on to aiocoap. Returns how many sockets were hooked
    (0 when the context has no udp6 transport: the aiocoap resource still serves).
    `allowed(token)`: whether plain CoAP may read that offer (not a secured device's)."""
    fast = FastPath(repository, remote=True)
    sockets = udp_sockets(context)
    for udp in sockets:
        udp.wrap_receive(functools.partial(_Reader, fast, udp, allowed))
    return len(sockets)


class _Reader:
    """Reads one aiocoap socket in front of aiocoap: block GETs are answered here,
    everything else goes on to aiocoap's handler (`previous`).

    While blocks are being served, the socket is read every POLL_INTERVAL instead of at
    each datagram: a wake-up of the process costs far more than a block (on a loaded
    2-core VM ~250 us a wake against ~12 us a block), and downloads at one block a
    second per device otherwise wake us for nearly every datagram. A device cannot tell
    10 ms; the first datagram after a read that served no block wakes us at once.
    Past the first datagram of a read (aiocoap's recvmsg), what is queued is read with
    one recvmmsg and answered with one sendmmsg a round (`batchio`), where Linux has them."""

    def __init__(self, fast: FastPath, udp: UdpSocket,
                 allowed: Callable[[str], bool] | None, previous: Receive) -> None:
        self._fast, self._udp, self._allowed, self._previous = fast, udp, allowed, previous
        self._socket = udp.socket
        self._paused = False  # not woken by datagrams: `_poll` reads them
        self._poll: asyncio.TimerHandle | None = None
        self._heard = False
        self._batch = batchio.DatagramBatch.open(
            self._socket, udp.sendmsg, udp.error_received)

    def __call__(self, data: bytes, ancdata: list[Any], flags: int, address: Any) -> None:
        """udp6's datagram handler: this datagram, then what else is queued now."""
        self._heard = True
        served = self._one(data, ancdata, flags, address)
        # aiocoap's transport reads one datagram per event-loop turn; drain what is
        # queued now, so a burst costs one wake-up: DRAIN datagrams at most, then the
        # next turn reads on (other callbacks of the loop run meanwhile).
        drained = self._drain_batched(served) if self._batch is not None \
            else self._drain_one_by_one(served)
        if drained is None:  # DRAIN read and maybe more queued: read again at the next turn
            self._resume()
        elif drained:
            self._pause()
        else:
            self._resume()

    def _drain_batched(self, served: int) -> int | None:
        """recvmmsg/sendmmsg rounds (`batchio`); None when DRAIN were read."""
        batch, sock, read = self._batch, self._socket, 1
        assert batch is not None
        while read < DRAIN:
            if sock.fileno() < 0:  # closed while dispatching: the context is shutting down
                return 0
            count, handled = batch.round(self._answer, PASS, self._previous)
            read, served = read + count, served + handled
            if count < batchio.SLOTS:
                return served  # the queue was empty
        return None

    def _drain_one_by_one(self, served: int) -> int | None:
        """Where recvmmsg is not available: recvmsg as aiocoap does; None when DRAIN
        were read."""
        sock = self._socket
        for _ in range(DRAIN - 1):
            if sock.fileno() < 0:  # closed while dispatching: the context is shutting down
                return 0
            try:
                more = sock.recvmsg(4096, 1024)
            except (BlockingIOError, InterruptedError):
                return served
            except OSError as exc:
                self._udp.error_received(exc)
                return served
            served += self._one(*more)
        return None

    def _answer(self, data: bytes) -> bytes | None:
        return answer(self._fast, data, exclusive=False, allowed=self._allowed)

    def _one(self, data: bytes, ancdata: list[Any], flags: int, address: Any) -> int:
        """Answer or pass on one datagram; 1 when the fast path answered it."""
        reply = answer(self._fast, data, exclusive=False, allowed=self._allowed)
        if reply is PASS:
            self._previous(data, ancdata, flags, address)
            return 0
        if reply:
            pktinfo = [a for a in ancdata if a[0] == socket.IPPROTO_IPV6
                       and a[1] == socket.IPV6_PKTINFO]
            self._udp.sendmsg(reply, pktinfo, address)
        return 1

    def _pause(self) -> None:
        if self._socket.fileno() < 0:
            return
        if not self._paused:
            self._udp.pause_reading()
            self._paused = True
        if self._poll is None:
            self._poll = asyncio.get_running_loop().call_later(POLL_INTERVAL, self._read)

    def _resume(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
        if self._paused and self._socket.fileno() >= 0:
            self._udp.resume_reading()
        self._paused = False

    def _read(self) -> None:
        """The poll: read what came meanwhile (aiocoap's read, its error queue first);
        nothing came, so wait for the next datagram again."""
        self._poll = None
        if self._socket.fileno() < 0:
            return  # the context shut down meanwhile
        self._heard = False
        self._udp.read_now()  # calls us back when a datagram was queued
        if not self._heard:
            self._resume()
