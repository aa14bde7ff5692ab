"""The small DTLS interface the CoAPs listener is written against, and its session records.

A `DtlsBinding` turns datagrams from the wire into plaintext (`receive`), plaintext into
records on the wire (`send`, through the `Transmit` callable it was built with) and tells
which PSK identity authenticated the session at an address (`session`). The CoAPs
transport (`dtls_transport.py`) drives one; `dtls_tinydtls.py` is the implementation
(tinydtls through DTLSSocket). Any other binding (mbed TLS, a Connection ID capable one:
then `Address` would become the connection id) fits behind the same few methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

# A peer as the socket sees it: (IPv6 host, port); IPv4 peers are IPv4-mapped.
Address = tuple[str, int]
# A datagram for the wire: (peer, record bytes).
Transmit = Callable[[Address, bytes], None]
# PSK identity -> (key, endpoint bound to it), or None when unknown: a dict lookup.
KeyLookup = Callable[[bytes], "tuple[bytes, str] | None"]
# (address, session) when a session ends (idle, revoked, replaced, closed by the peer).
SessionClosed = Callable[[Address, "Session"], None]


@dataclass(slots=True, eq=False)
class Session:
    """An established DTLS session: who authenticated, bound to which endpoint."""

    address: Address
    identity: bytes
    endpoint: str
    established_at: float
    last_seen: float
    handle: object = field(default=None, repr=False)  # the binding's own per-peer value


@dataclass(slots=True)
class DtlsStats:
    """What /status shows of the CoAPs listener (counters since start)."""

    sessions: int = 0  # established now
    handshaking: int = 0  # handshakes in progress now (past the cookie check)
    handshakes: int = 0  # completed
    handshake_failures: int = 0  # fatal alerts or timeouts before completion
    handshakes_refused: int = 0  # ClientHellos dropped while the handshake cap was reached
    cookies_sent: int = 0  # HelloVerifyRequests (no state kept for them)
    replaced: int = 0  # a new handshake from an address that had a session (reboot)
    closed: int = 0  # ended by the peer (a close_notify or a fatal alert)
    evicted: int = 0  # closed for a newer session of the same identity (over the cap)
    expired: int = 0  # idle sessions closed
    revoked: int = 0  # sessions closed because their credential went or changed
    unknown_identities: int = 0  # key lookups for identities we do not know

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


class DtlsBinding(Protocol):
    stats: DtlsStats

    def receive(self, address: Address, datagram: bytes, now: float) -> list[bytes]:
        """The application data in one datagram (records of handshakes are answered
        through `Transmit` and give nothing)."""

    def send(self, address: Address, plaintext: bytes) -> bool:
        """Encrypt for the session at `address`; False when there is none."""

    def session(self, address: Address) -> Session | None: ...

    def sessions(self) -> list[Session]: ...

    def close(self, address: Address) -> None:
        """End the session (or handshake) at `address` now."""

    def tick(self, now: float) -> None:
        """Retransmit handshake flights, drop stale handshakes and idle sessions."""
