"""One peer's ICMP port unreachable must not cost another peer its datagram or exchange.

The server socket has IP_RECVERR set (aiocoap), so Linux reports the port unreachable
caused by a datagram to a vanished peer (a device rebooted onto a new socket) a second
time, on the socket's NEXT send, whatever that send's destination. In the 1,000-device
rollout that dropped an Execute and failed it as "no answer" for the wrong device.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import select
import socket
from typing import Any

import pytest
from aiocoap import ACK, CONTENT, GET, NON, Message
from aiocoap.error import NetworkError
from aiocoap.transports.udp6 import UDP6EndpointAddress
from builders.ports import free_udp_port

from reconciler.lwm2m.aiocoap_adapter import udp_sockets
from reconciler.lwm2m.coaperrors import abandon
from reconciler.lwm2m.server import Lwm2mServer


def _interface(server: Lwm2mServer) -> Any:
    for token_manager in server.context.request_interfaces:
        interface = getattr(token_manager.token_interface, "message_interface", None)
        if interface is not None and hasattr(interface, "transport"):
            return interface
    raise AssertionError("the server has no udp6 interface")


async def _receive(sock: socket.socket) -> tuple[bytes, Any]:
    loop = asyncio.get_running_loop()
    return await asyncio.wait_for(loop.sock_recvfrom(sock, 2048), 5)


async def test_a_request_survives_a_port_unreachable_caused_by_another_peer(
        server: Lwm2mServer, udp_peer: socket.socket) -> None:
    port = udp_peer.getsockname()[1]
    request = server.context.request(Message(code=GET, uri=f"coap://127.0.0.1:{port}/3/0/0"))
    data, address = await _receive(udp_peer)
    asked = Message.decode(data)
    interface = _interface(server)

    # A datagram to a closed port, then (before the event loop can read the error queue)
    # the server's next send, to the peer whose request is in flight.
    interface.transport.sendmsg(b"\x50\x00\x00\x01", [], 0,
                                ("::ffff:127.0.0.1", free_udp_port(), 0, 0))
    note = Message(_mtype=NON, _mid=7, code=CONTENT, payload=b"still here")
    note.remote = UDP6EndpointAddress(("::ffff:127.0.0.1", port, 0, 0), interface)
    interface.send(note)

    arrived, _ = await _receive(udp_peer)
    assert Message.decode(arrived).payload == b"still here"
    answer = Message(_mtype=ACK, _mid=asked.mid, _token=asked.token, code=CONTENT,
                     payload=b"sim-1")
    udp_peer.sendto(answer.encode(), address)
    response = await asyncio.wait_for(request.response, 5)
    assert response.code == CONTENT and response.payload == b"sim-1"


async def test_a_send_to_an_unreachable_destination_still_reports_its_own_error(
        server: Lwm2mServer) -> None:
    interface = _interface(server)
    errors: list[OSError] = []
    interface.error_received = errors.append
    # Broadcast without SO_BROADCAST: refused every time, so the error is the destination's.
    interface.transport.sendmsg(b"\x50\x00\x00\x02", [], 0,
                                ("::ffff:255.255.255.255", 5683, 0, 0))
    assert [error.errno for error in errors] == [errno.EACCES]


async def _error_queued(sock: socket.socket) -> None:
    """Until the socket has something to read (its error queue: a port unreachable)."""
    deadline = asyncio.get_running_loop().time() + 5.0
    while not select.select([sock], [], [], 0)[0]:
        assert asyncio.get_running_loop().time() < deadline, "no ICMP error came"
        await asyncio.sleep(0.005)  # the kernel queues it: no event to await while paused


async def test_a_port_unreachable_for_a_request_abandoned_in_the_same_pass_logs_nothing(
        server: Lwm2mServer, caplog: pytest.LogCaptureFixture) -> None:
    """Our caller gives up on a request (its timeout, shutdown) and, later in the same pass
    of the event loop, the socket's reader reads the port unreachable its Confirmable
    caused: aiocoap set the error on the response future we had just cancelled
    (InvalidStateError, logged at ERROR with a traceback, twice, and the other requests to
    that peer never heard of the error)."""
    [udp] = udp_sockets(server.context)
    udp.pause_reading()  # the loop must not read the error before we abandon the request
    try:
        port = free_udp_port()  # nobody listens there
        uri = f"coap://127.0.0.1:{port}/3/0"
        request = server.context.request(Message(code=GET, uri=f"{uri}/0"))  # blockwise
        wanted = server.context.request(Message(code=GET, uri=f"{uri}/1"),
                                        handle_blockwise=False)  # queued behind it
        await _error_queued(udp.socket)
        abandon(request)  # one pass: the caller's cancellation, then the socket's reader
        udp.read_now()
    finally:
        udp.resume_reading()
    with pytest.raises(NetworkError):  # the peer's other request heard of it at once
        wanted.response.result()
    await asyncio.sleep(0)  # the abandoned one's done-callbacks end it
    assert request.response.cancelled()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    outgoing = udp._mman.token_manager.outgoing_requests
    assert not [remote for _, remote in outgoing if remote.sockaddr[1] == port]
