"""Real aiocoap server and client contexts on loopback ports for the firmware tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiocoap import Context, resource

from bench.blockserver import BlockServer
from reconciler.lwm2m.fastpath import install_fast_path
from reconciler.lwm2m.firmware import FirmwareRepository


def socket_port(context: Any) -> int:
    for token_manager in context.request_interfaces:
        interface = getattr(token_manager.token_interface, "message_interface", None)
        if interface is not None:
            return int(interface.transport.get_extra_info("socket").getsockname()[1])
    raise RuntimeError("no UDP socket")


@dataclass
class Served:
    repository: FirmwareRepository
    context: Any  # aiocoap server context with the repository mounted at /fw
    port: int

    @property
    def base(self) -> str:
        return f"coap://127.0.0.1:{self.port}"


@pytest.fixture
def image() -> bytes:
    return os.urandom(5000)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    repository = FirmwareRepository()
    site = resource.Site()
    repository.mount(site)
    context = await Context.create_server_context(site, bind=("127.0.0.1", 0), transports=["udp6"])
    try:
        yield Served(repository, context, socket_port(context))
    finally:
        await context.shutdown()


@pytest.fixture(params=["aiocoap", "fast-own-socket", "fast-shared-socket"])
async def base(request: pytest.FixtureRequest, served: Served) -> AsyncIterator[str]:
    """Base URI of each way we serve the repository: the aiocoap resource, the fast path
    on its own socket, the fast path hooked into the aiocoap server socket."""
    if request.param == "aiocoap":
        yield served.base
    elif request.param == "fast-shared-socket":
        assert install_fast_path(served.context, served.repository) == 1
        yield served.base
    else:
        server = BlockServer(served.repository)
        await server.start()
        try:
            yield server.base_uri
        finally:
            await server.stop()


@pytest.fixture
async def block_server(served: Served) -> AsyncIterator[BlockServer]:
    server = BlockServer(served.repository)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def client() -> AsyncIterator[Any]:
    context = await Context.create_client_context(transports=["udp6"])
    try:
        yield context
    finally:
        await context.shutdown()
