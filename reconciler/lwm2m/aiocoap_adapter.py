"""The one place that reaches into aiocoap's private parts: its udp6 message layer.

aiocoap offers no public hook for what a server in front of a fleet needs (a bounded
duplicate cache, a Reset for malformed Confirmables, firmware blocks answered before its
message layer, surviving another peer's ICMP error, a request abandoned at our own
timeout that stops being retransmitted), so `hardening.py` and `fastpath.py`
replace a few attributes of its udp6 transport and message manager. They do it only
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
from typing import Any

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
        the missing canceller."""
        mman = self._mman
        send = mman.send_message

        def send_message(message: Message, monitor: Callable[[], None]) -> Any:
            send(message, monitor)
            if message.mtype is not CON or not message.code.is_request():
                return None
            return functools.partial(_withdraw, mman, message, monitor)

        mman.send_message = send_message


class UdpSocket(MessageLayer):
    """One udp6 socket of an aiocoap context: its message manager and message interface.

    The private attributes used: `MessageManager._recent_messages` (to recognise the
    udp6 kind), `._deduplicate_message`, `._store_response_for_duplicates`,
    `.send_message`, `._active_exchanges`, `._backlogs`, `._continue_backlog`,
    `MessageInterfaceUDP6.datagram_msg_received`, `._ctx.dispatch_message`,
    `.transport.sendmsg` (replaced per instance), `.transport._read_ready` (what its
    socket's reader runs) and `.error_received`."""

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
