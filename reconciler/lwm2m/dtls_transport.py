"""The CoAPs listener: one UDP socket, a `DtlsBinding` per socket, aiocoap above it.

`CoapsListener` reads datagrams, has the binding decrypt them and hands the plaintext
first to the firmware fast path (block GETs of /fw/<token> are answered inside the
session, without aiocoap, when the offer belongs to the session's endpoint) and the rest
to aiocoap's message layer as coming from the session's `DtlsRemote`: the registration
interface, device operations, Observe and Block1 push work as over plain CoAP. Requests to
a device leave through the same session. `Lwm2mServer` adds it to its aiocoap context
(`add_coaps`); a timer retransmits handshake flights and expires handshakes and idle
sessions, and the binding's `stats` are the /status `dtls` section.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Any, cast

from aiocoap import error, interfaces
from aiocoap.numbers import constants
from aiocoap.transports.generic_udp import GenericMessageInterface
from aiocoap.util import hostportjoin

from reconciler.lwm2m.dtls_binding import Address, DtlsBinding, Session
from reconciler.lwm2m.fastpath import PASS, FastPath, answer

log = logging.getLogger(__name__)

TICK = 1.0  # seconds between handshake retransmission checks and expiry sweeps
DRAIN = 64  # datagrams read per wake-up, as the plain fast path does
RECEIVE_BUFFER = 4 * 1024 * 1024
# Decides whether a session's endpoint may read the firmware at this token (fast path).
OfferCheck = Callable[[str, str], bool]


class DtlsRemote(interfaces.EndpointAddress):  # type: ignore[misc]  # aiocoap is untyped
    """The aiocoap remote of one DTLS session: its messages go through the session."""

    scheme = "coaps"
    is_multicast = False
    is_multicast_locally = False
    maximum_block_size_exp = constants.MAX_REGULAR_BLOCK_SIZE_EXP

    def __init__(self, listener: CoapsListener, session: Session) -> None:
        self._listener = listener
        self.address = session.address
        self.identity = session.identity
        self.endpoint = session.endpoint  # the endpoint the identity is bound to

    @property
    def sockaddr(self) -> Address:
        return self.address

    @property
    def hostinfo(self) -> str:
        return str(hostportjoin(self.address[0], self.address[1]))

    @property
    def uri_base(self) -> str:
        return "coaps://" + self.hostinfo

    @property
    def hostinfo_local(self) -> str:
        return self._listener.hostinfo_local

    @property
    def uri_base_local(self) -> str:
        return "coaps://" + self.hostinfo_local

    @property
    def blockwise_key(self) -> object:
        return self

    @property
    def authenticated_claims(self) -> list[bytes]:
        return [self.identity]

    def send(self, data: bytes) -> None:
        self._listener.send(self.address, data)

    def __repr__(self) -> str:
        return f"<DtlsRemote {self.hostinfo} identity={self.identity!r}>"


class CoapsListener(asyncio.DatagramProtocol):
    def __init__(self, make_binding: Callable[[CoapsListener], DtlsBinding],
                 fast: FastPath | None, offer_check: OfferCheck | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.binding = make_binding(self)
        self._fast = fast
        self._offer_check = offer_check
        self._remotes: dict[Address, DtlsRemote] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.interface: DtlsMessageInterface | None = None
        self.hostinfo_local = ""
        self.bound: tuple[str, int] = ("", 0)  # (host, port) as given to the socket
        self.sock: socket.socket | None = None  # the bound socket (read directly in bursts)

    # -- wiring -----------------------------------------------------------------------

    def transmit(self, address: Address, record: bytes) -> None:
        """The binding's `Transmit`: a record for the wire."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(record, address)

    def session_closed(self, address: Address, _session: Session) -> None:
        """The binding's `SessionClosed`: requests in flight to it fail now."""
        remote = self._remotes.pop(address, None)
        if remote is not None and self.interface is not None:
            self.interface.closed(remote)

    def remote(self, session: Session) -> DtlsRemote:
        remote = self._remotes.get(session.address)
        if remote is None or remote.identity != session.identity:
            remote = self._remotes[session.address] = DtlsRemote(self, session)
        return remote

    def send(self, address: Address, plaintext: bytes) -> None:
        if not self.binding.send(address, plaintext):
            log.info("no DTLS session at %s any more: message dropped", address)

    @property
    def port(self) -> int:
        return int(self.bound[1])

    # -- asyncio ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        with contextlib.suppress(OSError):
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self._ticker = asyncio.get_running_loop().create_task(self._tick(), name="coaps tick")

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._one(data, addr)
        sock = self.sock
        for _ in range(DRAIN - 1):  # a burst of block GETs costs one epoll round
            if sock is None or self._transport is None or sock.fileno() < 0:
                return
            try:
                data, addr = sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self._one(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("CoAPs socket error (another peer's ICMP): %s", exc)

    async def shutdown(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        for session in self.binding.sessions():
            self.binding.close(session.address)
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def connect(self, sockaddr: Any) -> Any:
        # A server cannot open a DTLS session to a device: it answers the device's own.
        raise error.NetworkError("a CoAPs server only talks inside sessions devices opened")

    # -- datagrams ----------------------------------------------------------------------

    def _one(self, data: bytes, addr: Any) -> None:
        address = (str(addr[0]), int(addr[1]))
        try:
            plaintexts = self.binding.receive(address, data, self._clock())
        except Exception:
            log.exception("DTLS failed on a %d-byte datagram from %s", len(data), address)
            return
        if not plaintexts:
            return
        session = self.binding.session(address)
        if session is None:
            return
        for plain in plaintexts:
            self._plaintext(session, plain)

    def _plaintext(self, session: Session, plain: bytes) -> None:
        if self._fast is not None and self._offer_check is not None:
            reply = answer(self._fast, plain, exclusive=False,
                           allowed=lambda token: self._check(session, token))
            if reply is not PASS:
                if reply:
                    self.binding.send(session.address, reply)
                return
        if self.interface is not None:
            self.interface.received(self.remote(session), plain)

    def _check(self, session: Session, token: str) -> bool:
        assert self._offer_check is not None
        return self._offer_check(session.endpoint, token)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                self.binding.tick(self._clock())
            except Exception:
                log.exception("DTLS housekeeping failed")


class DtlsMessageInterface(GenericMessageInterface):  # type: ignore[misc]  # untyped
    """aiocoap's message layer over the listener's sessions."""

    def __init__(self, mman: Any, listener: CoapsListener) -> None:
        super().__init__(mman, log, asyncio.get_running_loop())
        self._pool = listener
        listener.interface = self

    def received(self, remote: DtlsRemote, plaintext: bytes) -> None:
        self._received_datagram(remote, plaintext)

    def closed(self, remote: DtlsRemote) -> None:
        if self._mman is not None:
            self._received_exception(remote, error.NetworkError("DTLS session closed"))

    async def recognize_remote(self, remote: Any) -> bool:
        return isinstance(remote, DtlsRemote) and remote._listener is self._pool

    async def determine_remote(self, request: Any) -> Any:
        return None  # only remotes of sessions devices opened


async def open_listener(mman: Any, host: str, port: int,
                        make_listener: Callable[[], CoapsListener]) -> DtlsMessageInterface:
    """Bind the CoAPs socket (dual-stack IPv6, as aiocoap's udp6) and return the aiocoap
    message interface over it (for `aiocoap_adapter.add_message_transport`)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        bind_host = f"::ffff:{host}" if "." in host else host
        sock.bind((bind_host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    listener = make_listener()
    listener.sock = sock
    await loop.create_datagram_endpoint(lambda: listener, sock=sock)
    listener.bound = (host, int(sock.getsockname()[1]))
    listener.hostinfo_local = str(hostportjoin(host, listener.port))
    return DtlsMessageInterface(mman, listener)
