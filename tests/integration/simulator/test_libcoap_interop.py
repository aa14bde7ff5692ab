"""The simulator's Block2 download against libcoap's coap-server-notls, an independent
CoAP implementation: the package is stored there with coap-client-notls (Block1 PUT)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiocoap
import pytest
from builders.ports import free_udp_port
from builders.tools import require_tool

from reconciler.lwm2m.codecs import ContentFormat
from reconciler.model.lwm2m import FirmwareState, UpdateResult
from reconciler.simulator import DeviceSpec, make_package

pytestmark = pytest.mark.slow
PACKAGE = make_package("4.2.0", os.urandom(5000))


class _Ping(asyncio.DatagramProtocol):
    """CoAP ping (an empty CON, RFC 7252 §4.3): a listening CoAP endpoint resets it."""

    def __init__(self) -> None:
        self.answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if data[:1] == b"\x70" and not self.answered.done():  # v1, RST, empty
            self.answered.set_result(None)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP port unreachable: not bound yet, the next ping asks again


async def _listening(server: asyncio.subprocess.Process, port: int) -> bool:
    """Whether coap-server answers on `port` within 5 s. coap-client cannot tell us: a
    PUT sent before the server binds is refused, and coap-client still exits 0 when -B
    runs out, so the test once downloaded libcoap's built-in 1500-byte example_data."""
    loop = asyncio.get_running_loop()
    transport, ping = await loop.create_datagram_endpoint(
        _Ping, remote_addr=("127.0.0.1", port))
    try:
        for _ in range(100):
            transport.sendto(b"\x40\x00\x12\x34")
            try:
                await asyncio.wait_for(asyncio.shield(ping.answered), 0.05)
                return server.returncode is None
            except TimeoutError:
                if server.returncode is not None:
                    return False
        return False
    finally:
        transport.close()


async def _client(*args: str) -> tuple[int, bytes]:
    client = await asyncio.create_subprocess_exec(
        "coap-client-notls", "-B", "5", *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await client.communicate()
    return await client.wait(), err


async def _store(uri: str, tmp_path: Path) -> str | None:
    """PUT the package (Block1) and read it back with libcoap's own client: only a
    byte-exact copy on the server makes the simulator's download mean anything. None
    when stored, else what went wrong."""
    put = await _client("-m", "put", "-b", "512", "-f", str(tmp_path / "pkg.bin"), uri)
    back = tmp_path / "back.bin"
    got = await _client("-b", "1024", "-o", str(back), uri)
    stored = back.read_bytes() if back.exists() else b""
    if stored == PACKAGE:
        return None
    return (f"coap-server-notls holds {len(stored)} bytes, not the {len(PACKAGE)}-byte "
            f"package: PUT {put}, GET {got}")


async def _serve(tmp_path: Path) -> tuple[asyncio.subprocess.Process, str] | None:
    """coap-server-notls holding the package, or None if its port was taken meanwhile
    (it then exits: it could not bind)."""
    port = free_udp_port()
    server = await asyncio.create_subprocess_exec(
        "coap-server-notls", "-A", "127.0.0.1", "-p", str(port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    if await _listening(server, port):
        # /example_data is coap-server's built-in resource that keeps what a PUT sends.
        uri = f"coap://127.0.0.1:{port}/example_data"
        failure = await _store(uri, tmp_path)
        if failure is None:
            return server, uri
        if server.returncode is None:  # it is ours that answered, and it did not store
            server.kill()
            await server.wait()
            pytest.fail(failure)
    if server.returncode is None:
        server.kill()  # alive but silent for 5 s: try afresh
    await server.wait()  # (or it could not bind: another endpoint held the port)
    return None


@pytest.fixture
async def libcoap_package(tmp_path: Path) -> AsyncIterator[str]:
    require_tool("coap-server-notls")
    require_tool("coap-client-notls")
    (tmp_path / "pkg.bin").write_bytes(PACKAGE)
    for _ in range(3):
        started = await _serve(tmp_path)
        if started is not None:
            break
    else:
        pytest.fail("coap-server-notls would not start")
    server, uri = started
    try:
        yield uri
    finally:
        server.kill()
        await server.wait()


@pytest.mark.parametrize("block_size", [16, 256, 1024])
async def test_a_device_downloads_block_wise_from_libcoap(
        server: Any, launch: Any, libcoap_package: str, block_size: int) -> None:
    fleet = await launch(DeviceSpec("lc", block_size=block_size))
    answer = await server.request("lc", aiocoap.PUT, "/5/0/1",
                                  payload=libcoap_package.encode(),
                                  content_format=int(ContentFormat.TEXT))
    assert answer.code == aiocoap.CHANGED
    device = fleet.device("lc")
    await device.wait_for(lambda: device.state != FirmwareState.DOWNLOADING, timeout=20)
    assert (device.state, device.result) == (FirmwareState.DOWNLOADED, UpdateResult.INITIAL)
    assert device.fw.pkg_version == "4.2.0" and device.downloads == 1
