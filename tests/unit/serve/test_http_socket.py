"""The API's listening socket (`service._bind_http`): the connections it accepts send
small writes at once (TCP_NODELAY). With Nagle on, every keep-alive response's body
waited for the client's delayed ACK of its headers: 40 ms a request."""

from __future__ import annotations

import asyncio
import socket

from reconciler.serve.service import _bind_http


async def test_connections_accepted_on_the_api_socket_have_nagle_off() -> None:
    sock = _bind_http("127.0.0.1", 0)
    sock.listen(1)
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def on_connect(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = writer.get_extra_info("socket")
        accepted.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_connect, sock=sock)
    try:
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        assert await asyncio.wait_for(accepted, 5) != 0
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
