"""A tiny LwM2M server written for these tests with plain aiocoap, so the simulator is
checked against the specification's wire shapes and not against our own server.

It records every Register/Update/De-register with its query, payload and source address,
serves firmware block-wise (aiocoap's own Block2 handling) while logging each block
request's size and source port, and sends device requests from its own socket to the
address a device registered from.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiocoap
import pytest
from aiocoap import resource
from aiocoap.numbers import TransportTuning

from reconciler.simulator import DeviceSpec, Fleet, Timing
from reconciler.simulator.coap import Reliability

FAST = Timing(queue_window=0.5, install_delay=0.01, reboot_delay=0.02, retry_delay=0.2,
              slow_block_delay=0.05, reliability=Reliability(ack_timeout=0.3, max_retransmit=2))


class Impatient(TransportTuning):
    """Give up on a silent device after ~0.5 s instead of aiocoap's 93 s."""

    ACK_TIMEOUT = 0.2
    MAX_RETRANSMIT = 1


@dataclass
class Reg:
    endpoint: str
    query: dict[str, str | None]
    payload: str
    content_format: int | None
    hostinfo: str  # "127.0.0.1:PORT" the device registered from
    location: str


@dataclass
class Served:
    blocks: list[tuple[int, int]] = field(default_factory=list)  # (szx, source port)


class Rd(resource.Resource):  # type: ignore[misc]
    def __init__(self, server: TinyServer) -> None:
        super().__init__()
        self.server = server

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        return self.server.register(request)


class RdEntry(resource.Resource, resource.PathCapable):  # type: ignore[misc]
    def __init__(self, server: TinyServer) -> None:
        super().__init__()
        self.server = server

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        return self.server.update(request.opt.uri_path[0], request)

    async def render_delete(self, request: aiocoap.Message) -> aiocoap.Message:
        return self.server.deregister(request.opt.uri_path[0])


class Image(resource.Resource):  # type: ignore[misc]
    """Serves `data` block-wise with an ETag; `replace_with` takes over after block 0,
    as if the image were republished in the middle of a download."""

    def __init__(self, data: bytes, served: Served, replace_with: bytes | None) -> None:
        super().__init__()
        self.data, self.served, self.replace_with = data, served, replace_with

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return False  # slice here, so every block request is seen and logged

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        num, szx = (request.opt.block2.block_number, request.opt.block2.size_exponent
                    ) if request.opt.block2 else (0, 6)
        port = int(request.remote.hostinfo.rsplit(":", 1)[1])
        self.served.blocks.append((szx, port))
        size = 1 << (szx + 4)
        response = aiocoap.Message(payload=self.data[num * size:(num + 1) * size])
        response.opt.block2 = (num, (num + 1) * size < len(self.data), szx)
        response.opt.size2 = len(self.data)
        response.opt.etag = hashlib.sha256(self.data).digest()[:4]
        if self.replace_with is not None:
            self.data, self.replace_with = self.replace_with, None
        return response


class TinyServer:
    def __init__(self) -> None:
        self.site = resource.Site()
        self.site.add_resource(("rd",), Rd(self))
        self.site.add_resource(("rd",), RdEntry(self))
        self.regs: dict[str, Reg] = {}  # location id -> registration
        self.events: list[tuple[str, str]] = []  # (register|update|deregister, endpoint)
        self.served: dict[str, Served] = {}
        self.refuse: set[str] = set()  # endpoints answered 4.03 Forbidden
        self.stamps: list[tuple[str, str, float]] = []  # events with their loop time
        self._ids = itertools.count(1)
        self._cond = asyncio.Condition()
        self.ctx: Any = None

    async def start(self) -> None:
        self.ctx = await aiocoap.Context.create_server_context(
            self.site, bind=("127.0.0.1", 0), transports=["udp6"])

    async def stop(self) -> None:
        """Once (a test may stop it before the fixture does): aiocoap's shutdown is not
        idempotent."""
        ctx, self.ctx = self.ctx, None
        if ctx is not None:
            await ctx.shutdown()

    @property
    def port(self) -> int:
        for manager in self.ctx.request_interfaces:
            interface = getattr(manager.token_interface, "message_interface", None)
            transport = getattr(interface, "transport", None)
            if transport is not None:
                return int(transport.get_extra_info("socket").getsockname()[1])
        raise RuntimeError("no socket")

    @property
    def uri(self) -> str:
        return f"coap://127.0.0.1:{self.port}"

    # -- registration interface -------------------------------------------------------
    def register(self, request: aiocoap.Message) -> aiocoap.Message:
        query = dict([*q.split("=", 1), None][:2] for q in request.opt.uri_query)
        endpoint = str(query["ep"])
        if endpoint in self.refuse:
            self._record("refused", endpoint)
            return aiocoap.Message(code=aiocoap.FORBIDDEN)
        location = str(next(self._ids))
        cf = request.opt.content_format
        self.regs = {k: r for k, r in self.regs.items() if r.endpoint != endpoint}
        self.regs[location] = Reg(endpoint, query, request.payload.decode(),
                                  None if cf is None else int(cf),
                                  request.remote.hostinfo, location)
        self._record("register", endpoint)
        return aiocoap.Message(code=aiocoap.CREATED, location_path=("rd", location))

    def update(self, location: str, request: aiocoap.Message) -> aiocoap.Message:
        reg = self.regs.get(location)
        if reg is None:
            return aiocoap.Message(code=aiocoap.NOT_FOUND)
        self._record("update", reg.endpoint)
        return aiocoap.Message(code=aiocoap.CHANGED)

    def deregister(self, location: str) -> aiocoap.Message:
        reg = self.regs.pop(location, None)
        if reg is None:
            return aiocoap.Message(code=aiocoap.NOT_FOUND)
        self._record("deregister", reg.endpoint)
        return aiocoap.Message(code=aiocoap.DELETED)

    def _record(self, kind: str, endpoint: str) -> None:
        self.events.append((kind, endpoint))
        self.stamps.append((kind, endpoint, asyncio.get_running_loop().time()))
        asyncio.get_running_loop().create_task(self._wake())

    async def _wake(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    def count(self, kind: str, endpoint: str) -> int:
        return self.events.count((kind, endpoint))

    async def wait_event(self, kind: str, endpoint: str, count: int = 1,
                         timeout: float = 10.0) -> None:
        async with self._cond:
            await asyncio.wait_for(
                self._cond.wait_for(lambda: self.count(kind, endpoint) >= count), timeout)

    def reg(self, endpoint: str) -> Reg:
        return next(r for r in self.regs.values() if r.endpoint == endpoint)

    # -- device management and firmware ----------------------------------------------------
    async def request(self, endpoint: str, code: aiocoap.Code, path: str, *,
                      impatient: bool = False, blockwise: bool = True,
                      **options: Any) -> aiocoap.Message:
        uri = f"coap://{self.reg(endpoint).hostinfo}{path}"
        message = aiocoap.Message(code=code, uri=uri, **options)
        if impatient:
            message.transport_tuning = Impatient()
        return await self.ctx.request(message, handle_blockwise=blockwise).response

    def offer(self, name: str, data: bytes, replace_with: bytes | None = None) -> str:
        self.served[name] = Served()
        self.site.add_resource(("fw", name), Image(data, self.served[name], replace_with))
        return f"{self.uri}/fw/{name}"


@pytest.fixture
async def server() -> AsyncIterator[TinyServer]:
    tiny = TinyServer()
    await tiny.start()
    yield tiny
    await tiny.stop()


@pytest.fixture
async def fleets() -> AsyncIterator[list[Fleet]]:
    """Fleets a test starts are appended here and stopped after it."""
    started: list[Fleet] = []
    yield started
    for fleet in started:
        await fleet.stop()


@pytest.fixture
def launch(server: TinyServer, fleets: list[Fleet]) -> Any:
    """`await launch(DeviceSpec(...), ..., catalog=...)`: a registered fleet."""

    async def go(*specs: DeviceSpec, catalog: dict[str, str] | None = None,
                 timing: Timing = FAST) -> Fleet:
        fleet = Fleet(server.uri, list(specs), catalog, timing)
        fleets.append(fleet)
        await fleet.start(wait_registered=True, timeout=10)
        return fleet

    return go
