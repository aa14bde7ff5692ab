"""The simulator's Block2 download against libcoap's coap-server-notls, an independent
CoAP implementation: the package is stored there with coap-client-notls (Block1 PUT)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiocoap
import pytest

from reconciler.lwm2m.codecs import ContentFormat
from reconciler.model.lwm2m import FirmwareState, UpdateResult
from reconciler.simulator import DeviceSpec, make_package

pytestmark = pytest.mark.slow
PACKAGE = make_package("4.2.0", os.urandom(5000))


def _libcoap() -> bool:
    found = shutil.which("coap-server-notls") and shutil.which("coap-client-notls")
    if not found and os.environ.get("FOTA_REQUIRE_LIBCOAP"):
        pytest.fail("libcoap3-bin is required (FOTA_REQUIRE_LIBCOAP is set)")
    return bool(found)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _put(uri: str, path: Path) -> int:
    put = await asyncio.create_subprocess_exec(
        "coap-client-notls", "-m", "put", "-b", "512", "-B", "2", "-f", str(path), uri,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    return await put.wait()


async def _serve(tmp_path: Path) -> tuple[asyncio.subprocess.Process, str] | None:
    """coap-server-notls holding the package, or None if its port was taken meanwhile."""
    port = _free_port()
    server = await asyncio.create_subprocess_exec(
        "coap-server-notls", "-A", "127.0.0.1", "-p", str(port), "-d", "2",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    # /example_data is coap-server's built-in resource that keeps what a PUT sends; a
    # dynamically created resource (-d) was seen answering 4.04 to a later GET.
    uri = f"coap://127.0.0.1:{port}/example_data"
    # The server may still be starting: the first PUT can go unanswered.
    stored = False
    for _ in range(5):
        stored = server.returncode is None and await _put(uri, tmp_path / "pkg.bin") == 0
        if stored:
            break
    if stored and server.returncode is None:
        return server, uri
    if server.returncode is None:
        server.kill()  # alive but never took the package: try afresh
    await server.wait()  # (or it could not bind: another process took the port first)
    return None


@pytest.fixture
async def libcoap_package(tmp_path: Path) -> AsyncIterator[str]:
    if not _libcoap():
        pytest.skip("libcoap3-bin (coap-server-notls) is not installed")
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
