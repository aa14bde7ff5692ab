"""Duplicate detection answers retransmissions only, never a different exchange.

A device's socket is a raw UDP socket here, so message ids and tokens are chosen by the
test: a rebooted device can get a port another client just gave up and pick a message
id that client used, and the server's own requests to a device can reuse the id of
that device's last request.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from aiocoap import ACK, CON, CREATED, GET, POST, Message

from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.lwm2m import Path

LINKS = b"</1/0>,</3/0>,</5/0>"


def register(endpoint: str, mid: int, token: bytes) -> bytes:
    message = Message(_mtype=CON, _mid=mid, _token=token, code=POST, uri_path=("rd",),
                      uri_query=(f"ep={endpoint}", "lt=300", "lwm2m=1.1"),
                      content_format=40, payload=LINKS)
    return bytes(message.encode())


async def exchange(sock: socket.socket, server: Lwm2mServer, data: bytes) -> Message:
    loop = asyncio.get_running_loop()
    await loop.sock_sendto(sock, data, ("127.0.0.1", server.port))
    return await receive(sock)


async def receive(sock: socket.socket) -> Message:
    loop = asyncio.get_running_loop()
    data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 2048), 5)
    return Message.decode(data)


def message_manager(server: Lwm2mServer) -> Any:
    return next(iter(server.context.request_interfaces)).token_interface


async def test_a_new_register_reusing_a_recent_port_and_message_id_is_handled_afresh(
        server: Lwm2mServer, udp_peer: socket.socket) -> None:
    first = await exchange(udp_peer, server, register("old-owner", 100, b"tok-1"))
    second = await exchange(udp_peer, server, register("rebooted", 100, b"tok-2"))

    assert (first.code, first.token) == (CREATED, b"tok-1")
    assert (second.mtype, second.code, second.token) == (ACK, CREATED, b"tok-2")
    assert second.opt.location_path != first.opt.location_path
    assert server.registration("rebooted") is not None
    # a true retransmission (same id and token) still gets the stored answer, once handled
    again = await exchange(udp_peer, server, register("rebooted", 100, b"tok-2"))
    assert (again.token, again.opt.location_path) == (b"tok-2", second.opt.location_path)


async def test_a_server_request_reusing_a_device_s_message_id_keeps_its_answer(
        server: Lwm2mServer, udp_peer: socket.socket) -> None:
    answer = await exchange(udp_peer, server, register("dev", 200, b"tok-r"))
    assert answer.code == CREATED
    message_manager(server).message_id = 200  # the server's next request: mid 200 too
    read = asyncio.ensure_future(server.client("dev").read(Path(3, 0, 0), timeout=5))
    try:
        request = await receive(udp_peer)
        assert (request.mtype, request.code, request.mid) == (CON, GET, 200)
        # the device retransmits its Register (its ACK was "lost"): same answer as before
        again = await exchange(udp_peer, server, register("dev", 200, b"tok-r"))
        assert (again.mtype, again.code, again.token) == (ACK, CREATED, b"tok-r")
    finally:
        read.cancel()
        await asyncio.gather(read, return_exceptions=True)
