"""Fixtures for the CoAPs tests: an `Lwm2mServer` with a DTLS-PSK listener on loopback
port 0, keyed by a small identity -> (key, endpoint) table, and libcoap's
coap-client-openssl (an independent DTLS and CoAP stack) run as a subprocess.

Skipped when the binary is missing, unless FOTA_REQUIRE_LIBCOAP=1 (then it fails)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from builders.tools import require_tool

from reconciler.lwm2m.server import Lwm2mServer

# the serve tests run `fota serve` with the controller tests' harness
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "controller"))

CLIENT = "coap-client-openssl"
KEYS: dict[bytes, tuple[bytes, str]] = {
    b"dev-1": (b"key-of-device-1", "urn:dev:1"),
    b"dev-2": (b"key-of-device-2", "urn:dev:2"),
}
LINKS = "</1/0>,</3/0>,</5/0>"


def secured(endpoint: str, identity: bytes | None) -> str | None:
    """The test's policy: every endpoint requires PSK."""
    return "this endpoint requires DTLS-PSK" if identity is None else None


@pytest.fixture
def coap_client() -> str:
    return require_tool(CLIENT)


@pytest.fixture
def keys() -> dict[bytes, tuple[bytes, str]]:
    return dict(KEYS)


async def started(keys: dict[bytes, tuple[bytes, str]], *,
                  restoring: bool = False) -> Lwm2mServer:
    server = Lwm2mServer("127.0.0.1", 0, coaps=("127.0.0.1", 0), psk=keys.get,
                         register_check=secured)
    await server.start(restoring=restoring)
    return server


@pytest.fixture
async def server(keys: dict[bytes, tuple[bytes, str]]) -> AsyncIterator[Lwm2mServer]:
    srv = await started(keys)
    yield srv
    await srv.stop()


@dataclass
class Run:
    code: int
    output: str  # libcoap prints what it received and its DTLS errors on stdout


async def coap(client: str, identity: str, key: str, uri: str, *args: str,
               timeout: float = 20.0, wait: int = 10) -> Run:
    process = await spawn(client, identity, key, uri, *args, wait=wait)
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    finally:
        await reap(process)
    assert process.returncode is not None
    return Run(process.returncode, (out + err).decode(errors="replace"))


async def spawn(client: str, identity: str, key: str, uri: str,
                *args: str, wait: int = 10) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        client, "-B", str(wait), "-v", "6", "-u", identity, "-k", key, *args, uri,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def reap(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
    await process.communicate()


def register_uri(server: Lwm2mServer, endpoint: str) -> str:
    return f"coaps://127.0.0.1:{server.coaps_port}/rd?ep={endpoint}&lt=300&lwm2m=1.1&b=U"


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """For states only the binding knows (no event to await): look every 10 ms."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)
