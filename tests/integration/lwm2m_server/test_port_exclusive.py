"""Two LwM2M servers never share one UDP port: the second refuses to start, and no
other socket can join a server's port with SO_REUSEPORT (which aiocoap sets)."""

from __future__ import annotations

import errno
import socket

import pytest

from reconciler.lwm2m.server import Lwm2mServer


async def test_a_second_server_on_a_busy_port_refuses_to_start() -> None:
    first = Lwm2mServer("127.0.0.1", 0)
    await first.start()
    try:
        second = Lwm2mServer("127.0.0.1", first.port)
        with pytest.raises(OSError) as raised:
            await second.start()
        assert raised.value.errno == errno.EADDRINUSE
        assert f"127.0.0.1:{first.port} is already in use" in str(raised.value)
    finally:
        await first.stop()


async def test_a_port_held_by_another_program_is_refused_too() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind(("127.0.0.1", 0))
        port = other.getsockname()[1]
        with pytest.raises(OSError, match="already in use"):
            await Lwm2mServer("127.0.0.1", port).start()


def _reuseport_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


async def test_no_socket_joins_a_server_port_with_so_reuseport() -> None:
    """Linux gives bind(0) with SO_REUSEPORT a port another such socket of the same user
    holds, and the two split its datagrams: a request then reaches another program (a
    flaky 4.04 in a test that expected a Reset)."""
    server = Lwm2mServer("127.0.0.1", 0)
    await server.start()
    try:
        with _reuseport_socket() as joiner:
            with pytest.raises(OSError) as raised:
                joiner.bind(("::ffff:127.0.0.1", server.port))
            assert raised.value.errno == errno.EADDRINUSE
    finally:
        await server.stop()
