"""The DTLS-PSK server binding on tinydtls (DTLSSocket): one context for every peer.

`TinyDtlsServer` implements `dtls_binding.DtlsBinding` for the CoAPs transport. One
tinydtls context holds every peer, so its own RFC 6347 handling applies as written: a
ClientHello without a valid cookie gets a HelloVerifyRequest and leaves no state at all,
and a ClientHello with a valid cookie from an address that had a session replaces that
session (§4.2.8: a reboot or a NAT that reused the port). What aiocoap's experimental
`tinydtls_server` got wrong is fixed here: no per-address state before the cookie (our
records start when tinydtls answers with a ServerHello), handshakes in progress are capped
and time out, sessions end (idle timeout, close alerts, revocation) and free their peer, the
key lookup is one dict lookup per handshake (`KeyLookup`) that records the identity, and a
key tinydtls could not hold (DTLSSocket copies it without a length check) is refused.
tinydtls calls back synchronously from `handleMessage`, so the address being fed tells
which peer an event or a key lookup is about.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Final

from DTLSSocket import dtls  # type: ignore[import-untyped]

from reconciler.lwm2m.dtls_binding import (
    Address,
    DtlsStats,
    KeyLookup,
    Session,
    SessionClosed,
    Transmit,
)

log = logging.getLogger(__name__)

MAX_KEY: Final = 16  # tinydtls' DTLS_PSK_MAX_KEY_LEN (AES-128): a longer key overflows it
MAX_IDENTITY: Final = 32  # DTLS_PSK_MAX_CLIENT_IDENTITY_LEN
MAX_HANDSHAKES: Final = 1000  # in progress at once, past the cookie check
HANDSHAKE_TIMEOUT: Final = 30.0  # seconds from ServerHello to Finished
IDLE_TIMEOUT: Final = 7 * 24 * 3600.0  # NB-IoT devices sleep for days on one session
# A device may hold a few sessions at once (a download from a socket of its own, as
# Zephyr's FOTA client does); a NAT rebinding leaves a stale one behind. Past this many
# per identity the least recently heard one is closed.
SESSIONS_PER_IDENTITY: Final = 4
IDLE_SWEEP: Final = 60.0  # seconds between walks over every session for idle ones

_HANDSHAKE, _ALERT = 22, 21
_CLIENT_HELLO, _SERVER_HELLO, _HELLO_VERIFY = 1, 2, 3
_EVENT_CONNECTED: Final = 0x01DE
_LEVEL_FATAL, _CLOSE_NOTIFY = 2, 0


def _epoch0_handshake(record: bytes) -> int | None:
    """The handshake type of an epoch-0 handshake record (its first message), else None."""
    if len(record) < 14 or record[0] != _HANDSHAKE or record[3:5] != b"\0\0":
        return None
    return record[13]


class _Keys:
    """The mapping DTLSSocket asks for a key (`identity in store.keys()`, then
    `store[identity]` twice): one lookup per handshake, its result remembered."""

    def __init__(self, owner: TinyDtlsServer) -> None:
        self._owner = owner

    def keys(self) -> _Keys:
        return self

    def __contains__(self, identity: object) -> bool:
        return isinstance(identity, bytes) and self._owner.key_for(identity) is not None

    def __getitem__(self, identity: bytes) -> bytes:
        key = self._owner.key_for(identity)
        if key is None:
            raise KeyError(identity)
        return key


class TinyDtlsServer:
    def __init__(self, lookup: KeyLookup, transmit: Transmit, *,
                 on_closed: SessionClosed | None = None,
                 max_handshakes: int = MAX_HANDSHAKES,
                 handshake_timeout: float = HANDSHAKE_TIMEOUT,
                 idle_timeout: float = IDLE_TIMEOUT) -> None:
        self._lookup = lookup
        self._transmit = transmit
        self._on_closed = on_closed
        self._max_handshakes = max_handshakes
        self._handshake_timeout = handshake_timeout
        self._idle_timeout = idle_timeout
        self.stats = DtlsStats()
        self._sessions: dict[Address, Session] = {}
        self._by_identity: dict[bytes, list[Address]] = {}  # oldest first
        # address -> (started, identity or None): handshakes past the cookie check only
        self._handshakes: OrderedDict[Address, tuple[float, bytes | None]] = OrderedDict()
        self._current: Address | None = None  # the peer tinydtls is being fed for
        self._plain: list[bytes] = []
        self._later: list[Address] = []  # peers to free once tinydtls returned (no reentry)
        self._now = 0.0
        self._next_sweep = 0.0
        self._server_id = b"fota"  # tinydtls wants one; a server never sends it
        self._ctx: Any = dtls.DTLS(read=self._read, write=self._write, event=self._event,
                                   pskId=self._server_id, pskStore=_Keys(self))

    # -- DtlsBinding ----------------------------------------------------------------------

    def receive(self, address: Address, datagram: bytes, now: float) -> list[bytes]:
        self._now = now
        kind = _epoch0_handshake(datagram)
        if kind == _CLIENT_HELLO and address not in self._handshakes \
                and len(self._handshakes) >= self._max_handshakes:
            self.stats.handshakes_refused += 1  # the client retransmits later
            return []
        session = self._sessions.get(address)
        if session is not None:
            session.last_seen = now
        self._current, self._plain = address, []
        try:
            self._ctx.handleMessage(self._peer(address), datagram)
        finally:
            self._current = None
            self._free_later()
        plain, self._plain = self._plain, []
        return plain

    def send(self, address: Address, plaintext: bytes) -> bool:
        session = self._sessions.get(address)
        if session is None:
            return False
        self._current = address
        try:
            return int(self._ctx.write(session.handle, plaintext)) >= 0
        finally:
            self._current = None

    def session(self, address: Address) -> Session | None:
        return self._sessions.get(address)

    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    def close(self, address: Address) -> None:
        self._handshakes.pop(address, None)
        self._reset(address)
        self._drop(address)

    def revoke(self, identities: set[bytes]) -> int:
        """Close the sessions of these identities (their credential went or changed)."""
        closed = 0
        for identity in identities:
            for address in list(self._by_identity.get(identity, ())):
                self.close(address)
                closed += 1
        self.stats.revoked += closed
        return closed

    def tick(self, now: float) -> None:
        self._now = now
        self._ctx.checkRetransmit()
        while self._handshakes:
            address, (started, _identity) = next(iter(self._handshakes.items()))
            if now - started < self._handshake_timeout:
                break
            del self._handshakes[address]
            self.stats.handshake_failures += 1
            self._reset(address)
        if now < self._next_sweep:
            self._count()
            return
        self._next_sweep = now + min(IDLE_SWEEP, self._idle_timeout)
        idle = [a for a, s in self._sessions.items() if now - s.last_seen >= self._idle_timeout]
        for address in idle:
            self.stats.expired += 1
            self.close(address)
        self._count()

    def key_for(self, identity: bytes) -> bytes | None:
        """The key tinydtls asks for during a handshake with the current peer."""
        found = self._lookup(identity) if len(identity) <= MAX_IDENTITY else None
        if found is None:
            self.stats.unknown_identities += 1
            return None
        key, _endpoint = found
        if not 0 < len(key) <= MAX_KEY:
            log.warning("PSK of identity %r is %d bytes; tinydtls takes 1-%d: refused",
                        identity, len(key), MAX_KEY)
            return None
        current = self._current
        if current is not None and current in self._handshakes:
            self._handshakes[current] = (self._handshakes[current][0], identity)
        return key

    # -- tinydtls callbacks (synchronous, inside handleMessage/write/checkRetransmit) -------

    def _read(self, _peer: tuple[str, int], data: bytes) -> int:
        self._plain.append(data)
        return len(data)

    def _write(self, peer: tuple[str, int], data: bytes) -> int:
        address = (peer[0], int(peer[1]))
        kind = _epoch0_handshake(data)
        if kind == _SERVER_HELLO and address == self._current:
            self._started(address)
        elif kind == _HELLO_VERIFY:
            self.stats.cookies_sent += 1
        elif data[:1] == bytes([_ALERT]) and data[3:5] == b"\0\0" and data[13:14] == b"\2":
            self._failed(address)  # we refused the handshake (unknown identity, bad MAC)
        self._transmit(address, data)
        return len(data)

    def _event(self, level: int, code: int) -> None:
        address = self._current
        if address is None:
            return
        if code == _EVENT_CONNECTED and level == 0:
            self._connected(address)
        elif level == _LEVEL_FATAL or code == _CLOSE_NOTIFY:
            self._failed(address)
            if address in self._sessions:
                self.stats.closed += 1
            self._drop(address)

    # -- bookkeeping ----------------------------------------------------------------------

    def _failed(self, address: Address) -> None:
        if self._handshakes.pop(address, None) is not None:
            self.stats.handshake_failures += 1
            self._later.append(address)
            self._count()

    def _free_later(self) -> None:
        while self._later:
            self._reset(self._later.pop())

    def _started(self, address: Address) -> None:
        """tinydtls verified a cookie and made a peer: a session there is gone (§4.2.8)."""
        if address in self._sessions:
            self.stats.replaced += 1
            self._drop(address)
        self._handshakes[address] = (self._now, None)
        self._handshakes.move_to_end(address)
        self._count()

    def _connected(self, address: Address) -> None:
        started = self._handshakes.pop(address, None)
        identity = started[1] if started is not None else None
        found = None if identity is None else self._lookup(identity)
        if identity is None or found is None:
            self._later.append(address)  # not with a PSK suite; never serve unbound
            return
        held = self._by_identity.setdefault(identity, [])
        if len(held) >= SESSIONS_PER_IDENTITY:
            oldest = min(held, key=lambda a: self._sessions[a].last_seen)
            self.stats.evicted += 1  # its peer is freed once tinydtls returned
            self._drop(oldest)
            self._later.append(oldest)
        self._sessions[address] = Session(address, identity, found[1], self._now, self._now,
                                          handle=self._peer(address))
        held.append(address)
        self.stats.handshakes += 1
        self._count()

    def _drop(self, address: Address) -> None:
        session = self._sessions.pop(address, None)
        if session is None:
            return
        held = self._by_identity.get(session.identity)
        if held is not None and address in held:
            held.remove(address)
            if not held:
                del self._by_identity[session.identity]
        self._count()
        if self._on_closed is not None:
            self._on_closed(address, session)

    def _reset(self, address: Address) -> None:
        """Free tinydtls' peer at `address` (a no-op when it has none)."""
        self._ctx.resetPeer(self._peer(address))

    def _peer(self, address: Address) -> Any:
        session = self._sessions.get(address)
        if session is not None:
            return session.handle
        return dtls.Session(address[0], address[1])

    def _count(self) -> None:
        self.stats.sessions = len(self._sessions)
        self.stats.handshaking = len(self._handshakes)

