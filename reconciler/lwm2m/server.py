"""`Lwm2mServer`: the LwM2M server endpoint on one aiocoap UDP socket.

Owns the aiocoap server context and its site (the registration interface at `rd`, Send
at `dp`, the firmware repository beside them), the registration table, queue-mode
bookkeeping and the subscribers to registration events and to Sends. The controller
builds one, subscribes, and asks for a `DeviceClient` per endpoint; requests to devices
leave from this same socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from aiocoap import Context, Message, resource

from reconciler.lwm2m.aiocoap_adapter import add_message_transport, message_layers, udp_sockets
from reconciler.lwm2m.client import DeviceClient, RequestCounter
from reconciler.lwm2m.codecs import Value
from reconciler.lwm2m.deliveries import Deliveries
from reconciler.lwm2m.departures import Departures
from reconciler.lwm2m.dtls_binding import KeyLookup, Session
from reconciler.lwm2m.dtls_tinydtls import IDLE_TIMEOUT, TinyDtlsServer
from reconciler.lwm2m.dtls_transport import (
    CoapsListener,
    DtlsMessageInterface,
    open_listener,
)
from reconciler.lwm2m.fastpath import FastPath, install_fast_path
from reconciler.lwm2m.firmware import OFFER_LIFETIME, FirmwareRepository
from reconciler.lwm2m.hardening import DedupCache, harden, harden_sessions
from reconciler.lwm2m.logbudget import LogBudget, guard
from reconciler.lwm2m.pushes import Pushes
from reconciler.lwm2m.queue import DEFAULT_AWAKE_SECONDS, QueueMode
from reconciler.lwm2m.rd_resources import (
    EntryResource,
    RdService,
    RegisterCheck,
    RegisterResource,
)
from reconciler.lwm2m.rd_table import AwaitingSession, Entry, RegistrationTable
from reconciler.lwm2m.retransmit import AdaptiveTimers
from reconciler.lwm2m.send import AddressBook, SendResource, SendService
from reconciler.model.lwm2m import (
    ContentFormats,
    FirmwareOffer,
    Path,
    Registration,
    RegistrationEvent,
    RegistrationEventKind,
)

log = logging.getLogger(__name__)

Subscriber = Callable[[RegistrationEvent], None]
SendSubscriber = Callable[[str, dict[Path, Value]], None]
OfferSubscriber = Callable[[str, FirmwareOffer | None], None]  # endpoint, offer or revoked
ExpirySubscriber = Callable[[float], None]  # every offer with expires_at <= this is gone
FormatSubscriber = Callable[[str, str, int | None], None]  # endpoint, reg. id, read format
_Callback = TypeVar("_Callback")

# A fleet keeps a request per downloading device in flight; the default ~200 KB receive
# buffer holds ~250 datagrams, and every one dropped costs its device a 2-3 s
# retransmission timeout. Linux caps this at net.core.rmem_max (needs no privilege).
RECEIVE_BUFFER = 4 * 1024 * 1024
# Why requests were refused for security (dtls_status `refused_<reason>`): a Register of
# another endpoint than the session's identity is bound to, plain CoAP from an endpoint
# that requires PSK, an Update or De-register from another security context than the
# registration's, a plain firmware block GET of a secured device's offer.
REFUSALS = ("identity_mismatch", "plain_coap", "security_context", "plain_firmware")
# A restarting server holds Register, Update and Send until its registrations are back
# (milliseconds after the bind), at most this long: then it answers as it can.
RESTORE_HOLD = 10.0


def _unshared_port(host: str) -> int:
    """A port no socket holds, for a server asked to bind port 0.

    aiocoap binds with SO_REUSEPORT, and Linux gives bind(0) of such a socket a port that
    another SO_REUSEPORT socket of the same user already holds (measured: 163 repeats in
    3,000 binds): the two then split the datagrams sent to it, and a device's request
    reaches some other program. A probe bound without the option gets a port nobody holds."""
    family, _, _, _, address = socket.getaddrinfo(host, 0, type=socket.SOCK_DGRAM)[0]
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.bind(address)
        return int(probe.getsockname()[1])


def _ensure_port_free(host: str, port: int) -> None:
    """Raise OSError(EADDRINUSE) when another process already serves this UDP port.

    aiocoap binds with SO_REUSEPORT, which lets a second server share the port and get
    half of every device's datagrams: two reconcilers would then split one fleet. A probe
    bind without that option fails while anyone holds the port."""
    for family, _, _, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM):
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                raise OSError(errno.EADDRINUSE, f"UDP {host}:{port} is already in use "
                              "(another LwM2M server runs there)") from None


class Lwm2mServer:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = 5683,
        *,
        admit: Callable[[str], bool] | None = None,
        public_uri: str | None = None,
        clock: Callable[[], float] = time.time,
        awake_seconds: float = DEFAULT_AWAKE_SECONDS,
        sweep_interval: float = 1.0,
        offer_lifetime: float = OFFER_LIFETIME,
        coaps: tuple[str, int] | None = None,
        psk: KeyLookup | None = None,
        register_check: RegisterCheck | None = None,
        coaps_public_uri: str | None = None,
        dtls_idle_timeout: float = IDLE_TIMEOUT,
        coap_rto: str = "adaptive",
    ) -> None:
        """`port` None: no plain CoAP listener at all (`coaps` must be given then; every
        device talks inside a DTLS session). `coaps`: also listen for DTLS-PSK (host,
        port; port 0 picks one), keys from `psk` (identity -> (key, endpoint)).
        `register_check(endpoint, identity)`: the security policy's reason to refuse a
        Register (identity None: plain CoAP), or None; a session's identity may register
        only its own endpoint in any case. `coap_rto`: `adaptive` retransmits our own
        Confirmables on each device's estimated RTO (`retransmit.py`), `fixed` on RFC
        7252's 2-3 s doubling."""
        if coap_rto not in ("adaptive", "fixed"):
            raise ValueError(f"coap_rto must be adaptive or fixed, not {coap_rto!r}")
        # what times our own Confirmables (None: aiocoap's fixed RFC 7252 timers)
        self.timers = AdaptiveTimers() if coap_rto == "adaptive" else None
        if port is None and coaps is None:
            raise ValueError("an LwM2M server needs a listener: plain CoAP, CoAPs or both")
        self._host = host
        self._coaps = coaps
        self._psk = psk or (lambda _identity: None)
        self._register_check = register_check
        self._coaps_public_uri = coaps_public_uri
        self._dtls_idle_timeout = dtls_idle_timeout
        self._coaps_listener: CoapsListener | None = None
        self._requested_port = port
        self._admit = admit or (lambda _endpoint: True)
        self._public_uri = public_uri
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._registry = RegistrationTable(clock)
        self._queue = QueueMode(clock, awake_seconds)
        self._subscribers: list[Subscriber] = []
        self._send_subscribers: list[SendSubscriber] = []
        self._offer_subscribers: list[OfferSubscriber] = []
        self._expiry_subscribers: list[ExpirySubscriber] = []
        self._format_subscribers: list[FormatSubscriber] = []
        self._addresses = AddressBook()  # who registered from where: Send is told by source
        self._formats: dict[str, int | None] = {}  # endpoint -> format its reads accepted
        # Secured registrations restored after our restart, until their device's next
        # Update in a new DTLS session (or a Register, De-register, expiry): held like a
        # sleeping queue-mode device, never sent to as plain CoAP
        self._awaiting: set[str] = set()
        self._context: Any = None
        self._caches: list[DedupCache] = []
        self._sweeper: asyncio.Task[None] | None = None
        self.log_budget = LogBudget()  # what outsiders can make our loggers say, bounded
        self.count_request: RequestCounter | None = None  # /metrics: (operation, outcome)
        self._unguard: Callable[[], None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # observation followers
        self._restored = asyncio.Event()  # set: registration requests are answered
        self.departures = Departures()  # requests in flight, ended when a device moves
        self.site = resource.Site()
        service = self._rd = RdService(self._registry, self._admit, self._on_event,
                                       self._until_restored, check=register_check,
                                       moved=self._on_moved)
        self.site.add_resource(("rd",), RegisterResource(service))
        self.site.add_resource(("rd",), EntryResource(service))
        sends = SendService(self._addresses, self.registration, self._on_send,
                            self._until_restored)
        self.site.add_resource(("dp",), SendResource(sends))
        self.firmware = FirmwareRepository(clock=clock, lifetime=offer_lifetime)
        self.firmware.mount(self.site)
        # when each device's package was last delivered (`deliveries.py`)
        self.deliveries = Deliveries(clock)
        self.firmware.on_final_block = self.deliveries.delivered
        self.pushes = Pushes(clock)  # pushes running, and how far each came (`pushes.py`)

    async def start(self, *, restoring: bool = False) -> None:
        """Bind and serve. `restoring`: Register, Update and Send wait until `restore`
        ran, since a datagram can be read as soon as the socket is bound, before the
        registrations of the last run are back (an Update would get 4.04)."""
        if not restoring:
            self._restored.set()
        if self._requested_port is None:
            # CoAPs only: a context without any UDP socket of aiocoap's (nothing bound on
            # a plain port); the CoAPs listener below is its one message transport.
            self._context = Context(loop=asyncio.get_running_loop(), serversite=self.site,
                                    loggername="coap-server")
        else:
            await self._bind_plain(self._requested_port)
        # after the context: aiocoap's loggers exist now, before any datagram is read
        self._unguard = guard(self.log_budget)
        self._caches = harden(self._context)
        # after harden: the firmware fast path wraps our datagram handler and passes on
        # everything that is not a block GET of /fw/<token>
        install_fast_path(self._context, self.firmware,
                          None if self._coaps is None else self._plain_may_fetch)
        if self._coaps is not None:
            await add_message_transport(self._context, self._open_coaps)
            self._caches += harden_sessions(self._context, DtlsMessageInterface)
        if self.timers is not None:
            for layer in [*udp_sockets(self._context),
                          *message_layers(self._context, DtlsMessageInterface)]:
                layer.time_exchanges(self.timers)
        self._sweeper = asyncio.create_task(self._sweep(), name="lwm2m registration sweeper")

    async def _bind_plain(self, requested: int) -> None:
        port = requested or _unshared_port(self._host)
        _ensure_port_free(self._host, port)
        self._context = await Context.create_server_context(
            self.site, bind=(self._host, port), transports=["udp6"]
        )
        # Nobody joins the port from now on (a later SO_REUSEPORT bind of it, explicit or
        # by bind(0), fails or passes it by): the option only matters at bind time.
        self._socket().setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 0)
        with contextlib.suppress(OSError):
            self._socket().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        self._queue.cancel_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._context is not None:
            await self._context.shutdown()
            self._context = None
            self._coaps_listener = None
        if self._unguard is not None:
            self.log_budget.flush(force=True)
            self._unguard()
            self._unguard = None

    @property
    def port(self) -> int | None:
        """The bound plain CoAP port (None with no plain listener: CoAPs only)."""
        if self._requested_port is None:
            return None
        return int(self._socket().getsockname()[1])

    @property
    def plain(self) -> bool:
        """Whether a plain CoAP listener runs (`port` not None)."""
        return self._requested_port is not None

    @property
    def context(self) -> Any:
        """The running aiocoap context (for lwm2m's own modules)."""
        if self._context is None:
            raise RuntimeError("Lwm2mServer is not started")
        return self._context

    @property
    def coaps_port(self) -> int | None:
        """The bound CoAPs port (None without a CoAPs listener)."""
        return None if self._coaps_listener is None else self._coaps_listener.port

    def dtls_status(self) -> dict[str, int] | None:
        """The CoAPs listener's counters for /status (None without one)."""
        listener = self._coaps_listener
        if listener is None:
            return None
        refused = self._rd.refusals
        return {**listener.binding.stats.as_dict(), "rebindings": self._rd.rebindings,
                "awaiting_session": len(self._awaiting), "resumed": self._rd.resumed,
                **{f"refused_{reason}": refused[reason] for reason in REFUSALS}}

    def dtls_sessions(self) -> list[Session]:
        """The established DTLS sessions (empty without a CoAPs listener)."""
        listener = self._coaps_listener
        return [] if listener is None else listener.binding.sessions()

    def revoke_identities(self, identities: set[bytes]) -> int:
        """Close the DTLS sessions of these identities (credentials removed or changed)."""
        listener = self._coaps_listener
        if listener is None:
            return 0
        binding = listener.binding
        assert isinstance(binding, TinyDtlsServer)
        return binding.revoke(identities)

    @property
    def coaps_uri(self) -> str:
        if self._coaps_public_uri is not None:
            return self._coaps_public_uri.rstrip("/")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"coaps://{host}:{self.coaps_port}"

    @property
    def public_uri(self) -> str:
        """Where plain CoAP devices download firmware; without a plain listener, the
        CoAPs URI (every device is in a session then)."""
        if self._requested_port is None:
            return self.coaps_uri
        if self._public_uri is not None:
            return self._public_uri.rstrip("/")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"coap://{host}:{self.port}"

    def subscribe(self, cb: Subscriber) -> Callable[[], None]:
        return _subscribe(self._subscribers, cb)

    def subscribe_send(self, cb: SendSubscriber) -> Callable[[], None]:
        """`cb(endpoint, values)` for each accepted Send (`POST /dp`), full paths."""
        return _subscribe(self._send_subscribers, cb)

    def subscribe_offers(self, cb: OfferSubscriber) -> Callable[[], None]:
        """`cb(endpoint, offer)` when a package URI is handed out (before the caller can
        write it to the device), `cb(endpoint, None)` when it is revoked: what a
        restarted server needs to keep serving the same URIs."""
        return _subscribe(self._offer_subscribers, cb)

    def subscribe_offer_expiry(self, cb: ExpirySubscriber) -> Callable[[], None]:
        """`cb(now)` after offers ran out (the sweep revoked every offer with
        `expires_at <= now`): one call however many, so their records go in one batch."""
        return _subscribe(self._expiry_subscribers, cb)

    def subscribe_formats(self, cb: FormatSubscriber) -> Callable[[], None]:
        """`cb(endpoint, registration_id, fmt)` when a device's reads accepted a format
        other than the one known for its registration: what a restarted server needs to
        ask in that format first, instead of earning a 4.06 again."""
        return _subscribe(self._format_subscribers, cb)

    def registration(self, endpoint: str) -> Registration | None:
        entry = self._registry.get(endpoint)
        return None if entry is None else entry.registration

    def registrations(self) -> list[Registration]:
        return [entry.registration for entry in self._registry.entries()]

    def is_awake(self, endpoint: str) -> bool:
        entry = self._registry.get(endpoint)
        return entry is not None and self.awake(entry.registration)

    def client(self, endpoint: str) -> DeviceClient:
        return DeviceClient(self, endpoint, self.count_request)

    def offer_firmware(self, endpoint: str, image_id: str, data: bytes) -> str:
        """Serve `data` to `endpoint` only, block-wise; the full coap URI to write to
        /5/0/1. Offering the same image again gives the same URI."""
        before = self.firmware.offered(endpoint)
        path = self.firmware.offer(endpoint, image_id, data)
        offer = self.firmware.offered(endpoint)
        if offer is not None and (before is None or offer.token != before.token):
            self._tell_offer(endpoint, offer.record)
        if self._requested_port is None or self._secured(endpoint):
            return self.coaps_uri + path  # a secured device downloads inside its session
        return self.public_uri + path

    def revoke_firmware(self, endpoint: str) -> None:
        """The device's update ended (in any way), its target changed or it left the
        desired state: the offer's URI answers 4.04 from now on (the image's bytes go
        with its last offer), and what its pushes kept to resume from is dropped, here
        and in the position log (`Pushes.drop`). Idempotent: subscribers hear only of an
        offer that was live."""
        if self.firmware.offered(endpoint) is not None:
            self.firmware.revoke(endpoint)
            self._tell_offer(endpoint, None)
        self.pushes.drop(endpoint)

    # -- after a restart: what an earlier run of this server handed out -------------------

    def restore(self, records: Iterable[tuple[Registration, ContentFormats]]) -> int:
        """Make registrations an earlier run accepted live again (started servers only):
        requests go to the address each was last heard from, under the registration id
        the device knows, in the formats it told us. A device that moved meanwhile is
        found again at its next Register or Update. Returns how many were restored.

        A registration made inside a DTLS session (or of an endpoint that requires PSK)
        lost its session with the last run, and a server cannot open one to a device:
        it is restored waiting for the device's next session (`AwaitingSession`), so its
        requests are held as for a sleeping queue-mode device, never sent as plain CoAP
        to its address, and go out once the device's next Update came in a new session
        of its identity (dtls_status `awaiting_session`, `resumed`)."""
        restored = 0
        for reg, formats in records:
            secured = reg.secured or (self._register_check is not None
                                      and self._register_check(reg.endpoint, None) is not None)
            if (self._coaps is None) if secured else not self.plain:
                continue  # no listener it could come back to: it registers again
            remote = AwaitingSession(reg.endpoint) if secured \
                else self._remote(reg.host, reg.port)
            if not self._registry.restore(Entry(reg, remote, formats.announced)):
                continue
            if secured:
                self._awaiting.add(reg.endpoint)
            if formats.read is not None:
                self._formats[reg.endpoint] = formats.read
            self._addresses.track(RegistrationEvent(RegistrationEventKind.REGISTERED, reg))
            restored += 1
        if self._awaiting:
            log.info("%d secured registrations restored waiting for their devices' next "
                     "DTLS session: nothing is sent to them before their next Update",
                     len(self._awaiting))
        self._restored.set()
        return restored

    def restore_offer(self, offer: FirmwareOffer, data: bytes) -> None:
        """Serve `data` again at the URI an earlier run handed out with `offer`."""
        self.firmware.restore(offer, data)

    def formats(self, endpoint: str) -> ContentFormats:
        """The formats the endpoint announced and its reads accepted, to persist."""
        entry = self._registry.get(endpoint)
        return ContentFormats(announced=None if entry is None else entry.root_content_format,
                              read=self._formats.get(endpoint))

    @property
    def queue(self) -> QueueMode:
        """Queue-mode bookkeeping (read by tests: how many requests a device holds)."""
        return self._queue

    # -- the `client.ServerSide` a DeviceClient sees --------------------------------------

    def entry(self, endpoint: str) -> Entry | None:
        return self._registry.get(endpoint)

    def awake(self, registration: Registration) -> bool:
        if registration.endpoint in self._awaiting:
            return False  # no session to send through until the device opens one
        return self._queue.is_awake(registration)

    async def wait_awake(self, endpoint: str) -> None:
        await self._queue.wait(endpoint)

    def heard(self, endpoint: str) -> None:
        self._queue.heard(endpoint)

    def request(self, message: Message, handle_blockwise: bool = True) -> Any:
        return self.context.request(message, handle_blockwise=handle_blockwise)

    def keep(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def delivered(self, endpoint: str) -> None:
        self.deliveries.delivered(endpoint)

    def departure(self, endpoint: str, remote: object
                  ) -> contextlib.AbstractContextManager[asyncio.Future[None]]:
        return self.departures.watch(endpoint, remote)

    def preferred_format(self, endpoint: str) -> tuple[int | None, ...]:
        return (self._formats[endpoint],) if endpoint in self._formats else ()

    def remember_format(self, endpoint: str, fmt: int | None) -> None:
        if endpoint in self._formats and self._formats[endpoint] == fmt:
            return  # every read lands here: only news is told
        self._formats[endpoint] = fmt
        entry = self._registry.get(endpoint)
        if entry is not None:
            _tell(self._format_subscribers, "format", endpoint,
                  entry.registration.registration_id, fmt)

    # -- internals ----------------------------------------------------------------------

    async def _until_restored(self) -> None:
        if self._restored.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._restored.wait(), RESTORE_HOLD)

    def _remote(self, host: str, port: int) -> Any:
        """The aiocoap remote for a device at host:port on our socket, as a datagram from
        there would have built it (IPv4 as IPv4-mapped IPv6, udp6's way)."""
        address = f"::ffff:{host}" if "." in host else host
        for udp in udp_sockets(self.context):
            return udp.endpoint_address((address, port, 0, 0), None)
        raise RuntimeError("the aiocoap context has no UDP socket")

    async def _open_coaps(self, mman: Any) -> Any:
        assert self._coaps is not None
        host, port = self._coaps
        psk = self._psk

        def binding(listener: CoapsListener) -> TinyDtlsServer:
            return TinyDtlsServer(psk, listener.transmit, on_closed=listener.session_closed,
                                  idle_timeout=self._dtls_idle_timeout)

        def make() -> CoapsListener:
            listener = CoapsListener(binding, FastPath(self.firmware), self._offer_is_for)
            self._coaps_listener = listener
            return listener

        return await open_listener(mman, host, port or _unshared_port(host), make)

    def _secured(self, endpoint: str) -> bool:
        """Whether `endpoint` talks to us inside a DTLS session (or must)."""
        if self._coaps is None:
            return False
        entry = self._registry.get(endpoint)
        if entry is not None and entry.registration.secured:
            return True  # registered in a session (or restored waiting for one)
        return self._register_check is not None and self._register_check(endpoint, None) is not None

    def plain_may_serve(self, endpoint: str) -> bool:
        """Whether plain CoAP may serve `endpoint`'s firmware (not a secured device's):
        for another node's offer, looked up here (cluster)."""
        return not self._secured(endpoint)

    def _plain_may_fetch(self, token: str) -> bool:
        """Plain CoAP never reads a secured device's firmware, token or not."""
        offer = self.firmware.lookup(token)
        if offer is None:
            return False
        if self._secured(offer.endpoint):
            self._rd.refusals["plain_firmware"] += 1
            return False
        return True

    def _offer_is_for(self, endpoint: str, token: str) -> bool:
        offer = self.firmware.lookup(token)
        return offer is not None and offer.endpoint == endpoint

    def _socket(self) -> socket.socket:
        for udp in udp_sockets(self.context):
            return udp.socket
        raise RuntimeError("the aiocoap context has no UDP socket")

    def _on_moved(self, before: Entry, now: Entry) -> None:
        """An endpoint registered (or updated) from another address: what waits for an
        answer at the old one never gets it (`departures.py`), and the round trip
        learnt at the old one holds at the new one (`RtoTable.moved`)."""
        self.departures.moved(now.registration.endpoint, now.remote)
        self.pushes.moved(now.registration.endpoint)  # resumed at the new address
        if self.timers is not None and type(before.remote) is type(now.remote):
            self.timers.table.moved(before.remote, now.remote)

    def _on_event(self, kind: RegistrationEventKind, entry: Entry) -> None:
        endpoint = entry.registration.endpoint
        self._awaiting.discard(endpoint)  # it spoke in a session, or it is gone
        if kind is not RegistrationEventKind.UPDATED:
            self._formats.pop(endpoint, None)  # a new registration may be new firmware
            self.deliveries.forget(endpoint)  # what was delivered was for the old one
        if kind in (RegistrationEventKind.REGISTERED, RegistrationEventKind.UPDATED):
            self._queue.wake(endpoint)
        else:
            self._queue.forget(endpoint)
        self.pushes.registration(endpoint, kind)  # a push to where it was is cut
        event = RegistrationEvent(kind, entry.registration, at=self._clock())
        self._addresses.track(event)
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                log.exception("registration event subscriber failed on %s", kind)

    def _tell_offer(self, endpoint: str, offer: FirmwareOffer | None) -> None:
        # Not caught: a subscriber that cannot record the offer (the store) must stop
        # the URI from reaching the device, or a restart would leave it dangling.
        for subscriber in list(self._offer_subscribers):
            subscriber(endpoint, offer)

    def _on_send(self, endpoint: str, values: dict[Path, Value]) -> None:
        # A Send is the device speaking: a queue-mode device is awake now, so requests
        # held for it go out (wake releases them, heard opens the window they run in).
        self._queue.wake(endpoint)
        self._queue.heard(endpoint)
        for subscriber in list(self._send_subscribers):
            try:
                subscriber(endpoint, dict(values))
            except Exception:
                log.exception("Send subscriber failed on %s", endpoint)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            for entry in self._registry.pop_expired():
                self._on_event(RegistrationEventKind.EXPIRED, entry)
            for cache in self._caches:
                cache.tick()
            now = self._clock()
            if self.firmware.drop_expired(now):
                _tell(self._expiry_subscribers, "offer expiry", now)
            self.log_budget.flush()


def _tell(callbacks: list[Callable[..., None]], what: str, *args: object) -> None:
    for callback in list(callbacks):
        try:
            callback(*args)
        except Exception:
            log.exception("%s subscriber failed", what)


def _subscribe(callbacks: list[_Callback], cb: _Callback) -> Callable[[], None]:
    """Add `cb`; the returned function removes it again (a second call does nothing)."""
    callbacks.append(cb)

    def unsubscribe() -> None:
        if cb in callbacks:
            callbacks.remove(cb)

    return unsubscribe
