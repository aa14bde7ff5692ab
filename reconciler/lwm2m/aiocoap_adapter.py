"""The one place that reaches into aiocoap's private parts: its udp6 message layer.

aiocoap offers no public hook for what a server in front of a fleet needs (a bounded
duplicate cache, a Reset for malformed Confirmables, firmware blocks answered before its
message layer, surviving another peer's ICMP error, a request abandoned at our own
timeout that stops being retransmitted), so `hardening.py` and `fastpath.py`
replace a few attributes of its udp6 transport and message manager (and
`retransmit.py`, through `MessageLayer.time_exchanges`, its retransmission timers). They do it only
through `UdpSocket`, which names every private attribute touched; `server.py` finds its
socket the same way. These internals were read in the aiocoap versions listed in
`CHECKED_AIOCOAP_VERSIONS`; tests/unit/lwm2m_server/test_aiocoap_adapter.py fails on any
other version (and on a missing attribute), so an upgrade means re-reading
aiocoap/messagemanager.py and aiocoap/transports/udp6.py and adding the version here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Callable
from typing import Any, Protocol

import aiocoap.meta
from aiocoap import CON, Message
from aiocoap.message import Direction
from aiocoap.transports.udp6 import UDP6EndpointAddress

log = logging.getLogger(__name__)

CHECKED_AIOCOAP_VERSIONS = frozenset({"0.4.17"})

# asyncio's DatagramProtocol hook as udp6 calls it: (data, ancdata, flags, address)
Receive = Callable[[bytes, list[Any], int, Any], None]
SendMsg = Callable[[bytes, list[Any], int, Any], None]


def version_checked() -> bool:
    """Whether the running aiocoap is one whose internals `UdpSocket` was checked against."""
    return aiocoap.meta.version in CHECKED_AIOCOAP_VERSIONS


class MessageLayer:
    """The message manager of one message transport of an aiocoap context: the hooks
    that touch only it (`UdpSocket` adds udp6's socket; the CoAPs listener's transport
    has only these). Private attributes: see `UdpSocket`."""

    def __init__(self, message_manager: Any) -> None:
        self._mman = message_manager

    def replace_deduplication(self, deduplicate: Callable[[Message], bool],
                              store_response: Callable[[Message], None]) -> None:
        """Instance attributes shadow the methods the message manager calls on itself."""
        self._mman._deduplicate_message = deduplicate
        self._mman._store_response_for_duplicates = store_response

    def cancellable_requests(self) -> None:
        """A request its caller gives up on takes its Confirmable off the wire.

        aiocoap's token layer asks the message layer for a canceller and calls it on
        every event of the request, its end included, but udp6's message manager offers
        none: an abandoned request to a silent device stays an active exchange,
        retransmitted for up to MAX_TRANSMIT_WAIT (93 s), and with NSTART = 1 every
        later request to that device waits in its backlog behind it (our probes after an
        unanswered Execute, for one); when the retransmissions run out, aiocoap fails
        every request to that device, observations included. This `send_message` returns
        the missing canceller. And an error for the device that comes in the same pass
        of the event loop as its caller gave up spares the abandoned request
        (`_spare_abandoned_requests`)."""
        mman = self._mman
        send = mman.send_message

        def send_message(message: Message, monitor: Callable[[], None]) -> Any:
            send(message, monitor)
            if message.mtype is not CON or not message.code.is_request():
                return None
            return functools.partial(_withdraw, mman, message, monitor)

        mman.send_message = send_message
        _spare_abandoned_requests(mman.token_manager)

    def time_exchanges(self, timers: ExchangeTimers) -> None:
        """Let `timers` choose each Confirmable's timeouts (aiocoap's are RFC 7252's fixed
        ones) and learn when it is answered.

        `_add_exchange` (its first transmission; a request held behind another to the
        same peer by NSTART = 1 gets there only when it leaves) first asks
        `timers.started`, which may set the message's `transport_tuning`: aiocoap draws
        the first timeout from its ACK_TIMEOUT and ACK_RANDOM_FACTOR there.
        `_schedule_retransmit` (called with the doubled timeout after each
        retransmission) asks `timers.backed_off` for the timeout to use instead.
        `_remove_exchange` (an ACK or RST came) tells `timers.answered` which of our
        messages it answered, found by (remote, message id) among the exchanges still
        on the wire: a duplicated ACK finds none, nor does a late one after our own
        timeout withdrew the request (`_withdraw`)."""
        mman = self._mman
        add, schedule, remove = (mman._add_exchange, mman._schedule_retransmit,
                                 mman._remove_exchange)
        sent: dict[tuple[Any, int], Message] = {}  # (remote, mid) -> our message on the wire

        def add_exchange(message: Message, monitor: Callable[[], None]) -> None:
            timers.started(message)
            if len(sent) > 2 * len(mman._active_exchanges) + 64:
                # ended without an answer (timed out, withdrawn, an error): forget them
                for key in [k for k in sent if k not in mman._active_exchanges]:
                    del sent[key]
            sent[(message.remote, message.mid)] = message
            add(message, monitor)

        def schedule_retransmit(message: Message, timeout: float, counter: int) -> Any:
            if counter > 0:
                timeout = timers.backed_off(message, timeout / 2, counter)
            return schedule(message, timeout, counter)

        def remove_exchange(message: Message) -> None:
            key = (message.remote, message.mid)
            ours = sent.pop(key, None)
            if ours is not None and mman._active_exchanges is not None \
                    and key in mman._active_exchanges:
                timers.answered(ours)
            remove(message)

        mman._add_exchange = add_exchange
        mman._schedule_retransmit = schedule_retransmit
        mman._remove_exchange = remove_exchange


class ExchangeTimers(Protocol):
    """What `MessageLayer.time_exchanges` asks about each of our Confirmables."""

    def started(self, message: Message) -> None:
        """Before its first transmission (may set `message.transport_tuning`)."""

    def backed_off(self, message: Message, previous: float, retransmissions: int) -> float:
        """The timeout after retransmission number `retransmissions` (1..MAX_RETRANSMIT),
        given the timeout that just ran out."""

    def answered(self, message: Message) -> None:
        """An ACK or RST for it came (after however many retransmissions)."""


class UdpSocket(MessageLayer):
    """One udp6 socket of an aiocoap context: its message manager and message interface.

    The private attributes used: `MessageManager._recent_messages` (to recognise the
    udp6 kind), `._deduplicate_message`, `._store_response_for_duplicates`,
    `.send_message`, `._active_exchanges`, `._backlogs`, `._continue_backlog`,
    `._add_exchange`, `._schedule_retransmit`, `._remove_exchange` (`time_exchanges`),
    `MessageInterfaceUDP6.datagram_msg_received`, `._ctx.dispatch_message`,
    `.transport.sendmsg` (replaced per instance), `.transport._read_ready` (what its
    socket's reader runs) and `.error_received`; `MessageManager.token_manager`'s
    `dispatch_error` and `outgoing_requests` (`cancellable_requests`)."""

    def __init__(self, message_manager: Any, interface: Any) -> None:
        super().__init__(message_manager)
        self._interface = interface

    @property
    def socket(self) -> socket.socket:
        sock: socket.socket = self._interface.transport.get_extra_info("socket")
        return sock

    # -- receiving --------------------------------------------------------------------

    def replace_receive(self, handler: Receive) -> None:
        """Read every datagram of this socket with `handler` instead of udp6's own."""
        self._interface.datagram_msg_received = handler

    def wrap_receive(self, wrapper: Callable[[Receive], Receive]) -> None:
        """Put `wrapper(previous handler)` in front of every datagram this socket reads."""
        previous: Receive = self._interface.datagram_msg_received
        self._interface.datagram_msg_received = wrapper(previous)

    def pause_reading(self) -> None:
        """Stop waking up for this socket's datagrams until `resume_reading`."""
        asyncio.get_running_loop().remove_reader(self.socket.fileno())

    def resume_reading(self) -> None:
        """Read each datagram as it comes again, as udp6's transport does."""
        asyncio.get_running_loop().add_reader(self.socket.fileno(), self.read_now)

    def read_now(self) -> None:
        """What udp6's transport does when the socket is readable: its error queue, then
        one datagram to the receive handler (nothing when none is queued)."""
        self._interface.transport._read_ready()

    def endpoint_address(self, address: Any, pktinfo: bytes | None) -> Any:
        """The aiocoap remote for a datagram from `address` (as udp6 would build it)."""
        return UDP6EndpointAddress(address, self._interface, pktinfo=pktinfo)

    def dispatch(self, message: Message) -> None:
        """Hand a decoded incoming message to aiocoap's message manager."""
        message.direction = Direction.INCOMING
        self._interface._ctx.dispatch_message(message)

    # -- sending ----------------------------------------------------------------------

    def sendmsg(self, data: bytes, ancdata: list[Any], address: Any) -> None:
        """Send through the transport (through `replace_sendmsg`'s function, if any)."""
        self._interface.transport.sendmsg(data, ancdata, 0, address)

    def send_to_remote(self, data: bytes, remote: Any) -> None:
        """Put an encoded datagram on the wire to an aiocoap udp6 remote."""
        pktinfo = remote.pktinfo
        ancdata = [] if pktinfo is None else [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO,
                                               pktinfo)]
        self.sendmsg(data, ancdata, remote.sockaddr)

    def replace_sendmsg(self, sendmsg: SendMsg) -> None:
        self._interface.transport.sendmsg = sendmsg

    def error_received(self, exc: Exception | None) -> None:
        """Tell aiocoap about a socket error, as the transport would."""
        self._interface.error_received(exc)


def _withdraw(mman: Any, message: Message, monitor: Callable[[], None]) -> None:
    """Stop retransmitting `message` (or drop it from the backlog) and let the device's
    next request go. The monitor identifies the exchange: after 65,536 messages the same
    (remote, message id) may belong to another one, and a canceller can run that late
    (it also runs when a long observation ends). Called at every event of the request:
    mostly there is nothing left to withdraw."""
    exchanges = mman._active_exchanges
    if exchanges is None:
        return  # the context shut down
    remote = message.remote
    key = (remote, message.mid)
    exchange = exchanges.get(key)
    if exchange is not None and exchange[0] is monitor:
        del exchanges[key]
        exchange[1].cancel()
        if remote in mman._backlogs:
            mman._continue_backlog(remote)
        return
    backlog = mman._backlogs.get(remote)
    if backlog:
        backlog[:] = [entry for entry in backlog if entry[1] is not monitor]


def _spare_abandoned_requests(token_manager: Any) -> None:
    """An error for a peer (a port unreachable, a DTLS alert) is not delivered to a
    request whose caller gave up on it earlier in the same pass of the event loop.

    aiocoap stops a request when its response future is cancelled, but only from that
    future's done-callback, which runs in the loop's next pass: a caller's cancellation
    (our timeout's `abandon`, a blockwise runner cancelled with the inner request it
    awaits, shutdown cancelling every task) followed in the same pass by the socket's
    reader delivering the error has aiocoap set the error on the cancelled future
    (InvalidStateError), logged at ERROR with a traceback by udp6 and again by asyncio,
    and the peer's other requests never hear of the error (they wait out their
    timeouts). Each request of that peer hears of it through its pipe's
    `add_exception`, which is guarded here for the one dispatch: the request that
    refuses it is stopped by the done-callback still to come.
    Private: `TokenManager.dispatch_error` (an instance attribute shadows the method
    the message manager calls), `.outgoing_requests` ((token, remote) -> pipe)."""
    dispatch = token_manager.dispatch_error

    def dispatch_error(exception: BaseException, remote: Any) -> None:
        for (_, to), pipe in list((token_manager.outgoing_requests or {}).items()):
            if to == remote and "add_exception" not in vars(pipe):
                pipe.add_exception = functools.partial(_deliver_error, pipe.add_exception)
        dispatch(exception, remote)

    token_manager.dispatch_error = dispatch_error


def _deliver_error(add_exception: Callable[[BaseException], None],
                   exception: BaseException) -> None:
    try:
        add_exception(exception)
    except asyncio.InvalidStateError:
        log.debug("an error for a request abandoned in the same pass: %s", exception)


def udp_sockets(context: Any) -> list[UdpSocket]:
    """The udp6 sockets of an aiocoap server context (none for other transports)."""
    if not version_checked():
        _warn_unchecked()
    found = []
    for token_manager in getattr(context, "request_interfaces", ()):
        mman = getattr(token_manager, "token_interface", None)
        interface = getattr(mman, "message_interface", None)
        if interface is None or not hasattr(mman, "_recent_messages"):
            continue
        if not hasattr(interface, "datagram_msg_received"):
            continue
        found.append(UdpSocket(mman, interface))
    return found


@functools.cache
def _warn_unchecked() -> None:
    log.warning("aiocoap %s is not among the versions whose internals were checked (%s): "
                "the message-layer hooks may misbehave", aiocoap.meta.version,
                ", ".join(sorted(CHECKED_AIOCOAP_VERSIONS)))


def message_layers(context: Any, interface_type: type) -> list[MessageLayer]:
    """The message managers of an aiocoap context whose message interface is one of
    ours (`interface_type`: the CoAPs listener's)."""
    found = []
    for token_manager in getattr(context, "request_interfaces", ()):
        mman = getattr(token_manager, "token_interface", None)
        if isinstance(getattr(mman, "message_interface", None), interface_type) \
                and hasattr(mman, "_recent_messages"):
            found.append(MessageLayer(mman))
    return found


async def add_message_transport(context: Any, constructor: Callable[[Any], Any]) -> None:
    """Add a message interface of ours (the CoAPs listener) to a running context, as
    `create_server_context` adds udp6: `constructor(message_manager)` returns it, awaited.
    Private: `Context._append_tokenmanaged_messagemanaged_transport`."""
    await context._append_tokenmanaged_messagemanaged_transport(constructor)
