"""Two LwM2M servers never share one UDP port: the second refuses to start."""

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
