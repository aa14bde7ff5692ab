"""Hardening of aiocoap's UDP message layer for a server that talks to whole fleets.

Why: aiocoap's MessageManager remembers every received request for EXCHANGE_LIFETIME
(247 s) to answer duplicates: a dict entry keyed by the remote object, the response
`Message`, which references its request `Message` (tokenmanager sets `m.request`), so
both messages with their option objects stay alive, and one asyncio TimerHandle per
exchange: ~2.6 KB per exchange by tracemalloc. `DedupCache` keeps only the encoded
response under (host, port, mid) in two bounded generations (~0.3 KB an entry, at most
2 x GENERATION_CAP entries), rotated by time and by size, so memory stays flat. `harden`
also answers malformed Confirmables (Reset; 4.02 for an undecodable option value or an
unrecognized critical option) instead of dropping them or letting aiocoap's decode
raise, keeps one peer's ICMP error from failing the exchanges of another
(`_resilient_sends`), and lets a request abandoned at our own timeout stop its
retransmissions and free the device's other requests (`UdpSocket.cancellable_requests`).
Malformed datagrams are logged at DEBUG with one INFO summary a minute at most
(`MalformedLog`), so a flood cannot fill the disk. Used by `server.py`;
every touch of aiocoap's internals goes through `aiocoap_adapter.UdpSocket`.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any, Protocol

from aiocoap import Message
from aiocoap import error as coap_error
from aiocoap.numbers.types import ACK, CON, RST

from . import coapframe
from .aiocoap_adapter import Receive, UdpSocket, message_layers, udp_sockets

log = logging.getLogger(__name__)

# Retransmissions of one CON span at most MAX_TRANSMIT_SPAN (45 s): two generations of
# this length keep every entry at least that long.
GENERATION_SECONDS = 45.0
GENERATION_CAP = 16384
# A send that fails with an error the socket had pending is tried again this often.
SEND_ATTEMPTS = 4
# The critical options of a request aiocoap acts on (RFC 7252 §5.4.1): Uri-Host, -Port,
# -Path, -Query, Accept, Block2, Block1; any other earns 4.02, the proxy options 5.05.
RECOGNIZED_CRITICAL = frozenset({3, 7, 11, 15, 17, 23, 27})
# Malformed datagrams are summarized at INFO at most once per this many seconds.
SUMMARY_SECONDS = 60.0

Key = tuple[str, int, int]  # source host, source port, message id
Seen = tuple[bytes, bytes | None]  # the request's token, the encoded response (when sent)


class Resender(Protocol):
    """Puts a stored answer on the wire again to a remote (udp6's socket, or a session)."""

    def send_to_remote(self, data: bytes, remote: Any) -> None: ...


class _InSession:
    """Answers a duplicate inside the DTLS session it came in (`DtlsRemote.send`)."""

    def send_to_remote(self, data: bytes, remote: Any) -> None:
        remote.send(data)


class DedupCache:
    """(remote, message id) -> (request token, encoded response or None while the request
    is in progress).

    A duplicate is a retransmission: same source, message id AND token. A new exchange
    that merely reuses a recent (port, message id), say a rebooted device whose new
    socket got a port another client just gave up, has its own token and is handled
    afresh, never answered with the response to the other exchange."""

    def __init__(self, udp: Resender, *, span: float = GENERATION_SECONDS,
                 cap: int = GENERATION_CAP, on_tick: Callable[[], None] | None = None) -> None:
        self._udp = udp
        self._on_tick = on_tick
        self._span = span
        self._cap = cap
        self._new: dict[Key, Seen] = {}
        self._old: dict[Key, Seen] = {}
        self._rotated_at = time.monotonic()

    def __len__(self) -> int:
        return len(self._new) + len(self._old)

    def tick(self) -> None:
        """Rotate when the current generation is old; the server calls this periodically."""
        if time.monotonic() - self._rotated_at >= self._span:
            self._rotate()
        if self._on_tick is not None:
            self._on_tick()

    def deduplicate(self, message: Message) -> bool:
        """True when `message` was seen before (its stored answer is sent again)."""
        key = _key(message)
        stored = self._new.get(key) or self._old.get(key)
        if stored is None or stored[0] != message.token:
            if len(self._new) >= self._cap:
                self._rotate()
            self._new[key] = (message.token, None)
            return False
        if message.mtype is CON and stored[1] is not None:
            self._udp.send_to_remote(stored[1], message.remote)
        return True

    def store_response(self, message: Message) -> None:
        """Called for every message the server sends: only an ACK or a Reset carries the
        message id of the request it answers; a request of the server's own to that
        device may happen to reuse the id and must not replace the answer."""
        if message.mtype not in (ACK, RST):
            return
        key = _key(message)
        for generation in (self._new, self._old):
            seen = generation.get(key)
            if seen is not None:
                generation[key] = (seen[0], message.encode())
                return

    def _rotate(self) -> None:
        self._old, self._new = self._new, {}
        self._rotated_at = time.monotonic()


def _key(message: Message) -> Key:
    # Plain values, not the remote object: a key then costs ~100 bytes instead of ~400.
    sockaddr = message.remote.sockaddr
    return (sockaddr[0], sockaddr[1], message.mid)


class MalformedLog:
    """Logs malformed datagrams so that a flood cannot fill the disk: each one at DEBUG,
    and at most one INFO line per `interval` counting them (the first after a quiet
    interval is told at once). `flush`, called on the server's periodic tick, tells
    the count left over when a flood stops."""

    def __init__(self, *, interval: float = SUMMARY_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._interval, self._clock = interval, clock
        self._count = 0
        self._latest: tuple[Any, str] = (None, "")
        self._told_at: float | None = None

    def record(self, address: Any, reason: str) -> None:
        log.debug("malformed CoAP datagram from %s: %s", address, reason)
        self._count += 1
        self._latest = (address, reason)
        self.flush()

    def flush(self) -> None:
        now = self._clock()
        if self._told_at is not None and now - self._told_at < self._interval:
            return
        if self._count == 0:
            self._told_at = None  # quiet for a whole interval: tell the next one at once
            return
        span = self._interval if self._told_at is None else now - self._told_at
        log.info("%d malformed CoAP datagram(s) reset or ignored in the last %.0f s "
                 "(the latest from %s: %s)", self._count, span, *self._latest)
        self._count, self._told_at = 0, now


def harden(context: Any, *, clock: Callable[[], float] = time.monotonic) -> list[DedupCache]:
    """Install the bounded dedup cache and the Reset on unparsable CONs on every UDP
    message manager of an aiocoap server context; returns the caches (for `tick`).
    `clock` times the summaries of malformed datagrams (tests pass their own)."""
    caches = []
    for udp in udp_sockets(context):
        malformed = MalformedLog(clock=clock)
        cache = DedupCache(udp, on_tick=malformed.flush)
        udp.replace_deduplication(cache.deduplicate, cache.store_response)
        udp.replace_receive(_reset_unparsable(udp, malformed))
        _resilient_sends(udp)
        udp.cancellable_requests()
        caches.append(cache)
    return caches


def harden_sessions(context: Any, interface_type: type) -> list[DedupCache]:
    """The same bounded dedup cache and cancellable requests for the CoAPs listener's
    message manager (`interface_type`): aiocoap's own would keep ~2.6 KB per exchange
    for 247 s, and a request abandoned at our timeout would stay on the wire, holding
    the device's later requests behind it, as over plain CoAP. Its datagrams are read
    and decrypted by the listener, so the udp6 socket hooks do not apply."""
    caches = []
    for layer in message_layers(context, interface_type):
        cache = DedupCache(_InSession())
        layer.replace_deduplication(cache.deduplicate, cache.store_response)
        layer.cancellable_requests()
        caches.append(cache)
    return caches


def _resilient_sends(udp: UdpSocket) -> None:
    """Replace the transport's sendmsg with one that survives another peer's ICMP error.

    With IP_RECVERR (aiocoap sets it), a port unreachable caused by a datagram to peer A
    (a device that just rebooted onto a new port, a finished download socket) is also
    left pending on the socket, and the NEXT sendmsg fails with it, whatever its
    destination B. aiocoap then drops B's datagram and pins the error on B, failing
    B's exchanges and observations: an Execute that never left looked like "no answer,
    the device is restarting", and the device waited in Downloaded for good. Reading
    the error clears it, so the send is simply tried again; the error queue still tells
    aiocoap, with the right address, that A is gone. Only an error that repeats belongs
    to B. A full buffer drops the datagram quietly: a Confirmable is retransmitted."""
    sock = udp.socket

    def sendmsg(data: bytes, ancdata: list[Any], flags: int, address: Any) -> None:
        failure: OSError | None = None
        for _ in range(SEND_ATTEMPTS):
            try:
                sock.sendmsg((data,), ancdata, flags, address)
                return
            except (BlockingIOError, InterruptedError):
                log.debug("send buffer full: a datagram to %s dropped", address)
                return
            except OSError as exc:
                if failure is not None and exc.errno == failure.errno:
                    break  # the same error again: it is this destination's own
                failure = exc
        udp.error_received(failure)

    udp.replace_sendmsg(sendmsg)


def _reset_unparsable(udp: UdpSocket, malformed: MalformedLog) -> Receive:
    """A datagram handler in place of udp6's that resets malformed Confirmables."""

    def reject(reply: bytes | None, ancdata: list[Any], address: Any, reason: str) -> None:
        malformed.record(address, reason)
        if reply is not None:
            pktinfo = [a for a in ancdata if a[0] == socket.IPPROTO_IPV6]
            udp.sendmsg(reply, pktinfo, address)

    def received(data: bytes, ancdata: list[Any], flags: int, address: Any) -> None:
        pktinfo = next(
            (d for lvl, typ, d in ancdata
             if lvl == socket.IPPROTO_IPV6 and typ == socket.IPV6_PKTINFO),
            None,
        )
        remote = udp.endpoint_address(address, pktinfo)
        reason = format_error(data)
        if reason is not None:
            reject(_reset(data), ancdata, address, reason)
            return
        try:
            message = Message.decode(data, remote)
        except coap_error.UnparsableMessage as exc:
            reject(_reset(data), ancdata, address, str(exc))
            return
        except Exception as exc:
            # aiocoap lets e.g. UnicodeDecodeError of a bad Uri-Path escape decode()
            reject(_bad_option(data), ancdata, address, f"option value: {exc}")
            return
        refusal = _refusal(message)
        if refusal is not None:  # a NON request is rejected by ignoring it (§4.3)
            reject(_bad_option(data, *refusal), ancdata, address, refusal[1])
            return
        try:
            udp.dispatch(message)
        except Exception:
            log.exception("CoAP message layer failed on a message from %s", address)

    return received


def format_error(data: bytes) -> str | None:
    """Why `data` is not a well-formed CoAP message (RFC 7252 §3), or None, by the fast
    path's parser: aiocoap's decode accepts what §3 says MUST be format errors. Token
    lengths 9-15 are reserved (this server negotiates no RFC 8974 extended tokens), a
    datagram cut short inside its token carries no token at all, a payload marker must
    be followed by a payload, and an Empty message has nothing after its header (§4.1)."""
    try:
        coapframe.parse(data)
    except coapframe.FormatError as exc:
        return str(exc)
    return None


def _confirmable(data: bytes) -> bool:
    return len(data) >= 4 and data[0] >> 6 == 1 and (data[0] >> 4) & 3 == 0


def _reset(data: bytes) -> bytes | None:
    """A message format error: a Confirmable is rejected with a Reset carrying its
    message id (RFC 7252 §4.2); anything else (other versions, NON, garbage shorter
    than a header) is silently ignored (§3, §4.3)."""
    return bytes((0x70, 0x00, data[2], data[3])) if _confirmable(data) else None


def _bad_option(data: bytes, code: int = coapframe.BAD_OPTION,
                diagnostic: str = "invalid option value") -> bytes | None:
    """A Confirmable request's piggybacked error: 4.02 when an option value breaks its
    format (a Uri-Path that is not UTF-8 counts as unrecognized, §5.4.1, and every
    option aiocoap decodes is critical), or `_refusal`'s; else as `_reset`."""
    token_length, method = data[0] & 0x0F if data else 0, data[1] if len(data) > 1 else 0
    if not _confirmable(data) or token_length > 8 or len(data) < 4 + token_length:
        return _reset(data)
    if not 1 <= method < 32:  # not a request: nothing to answer but a Reset
        return _reset(data)
    header = bytes((0x60 | token_length, code, data[2], data[3]))
    return header + data[4 : 4 + token_length] + b"\xff" + diagnostic.encode()


def _refusal(message: Message) -> tuple[int, str] | None:
    """The error a request earns for an option no resource here may act on: a critical
    option this server does not implement is 4.02 Bad Option (§5.4.1; aiocoap would
    serve the request as if it were absent), Proxy-Uri or Proxy-Scheme 5.05 (§5.7.2)."""
    if not message.code.is_request():
        return None
    for option in message.opt.option_list():
        number = int(option.number)
        if number in (coapframe.PROXY_URI, coapframe.PROXY_SCHEME):
            return coapframe.PROXYING_NOT_SUPPORTED, "this is not a proxy"
        if number & 1 and number not in RECOGNIZED_CRITICAL:
            return coapframe.BAD_OPTION, f"unrecognized critical option {number}"
    return None
