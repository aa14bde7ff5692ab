"""Fixtures for the LwM2M server tests: a real server on a loopback port 0, a small
aiocoap registration client, raw UDP sockets (one to the server for malformed datagrams,
a peer whose message ids and tokens the test picks), and a tiny in-test LwM2M device (an
aiocoap server context that registers from its own socket)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiocoap import Context, Message, resource
from aiocoap.numbers.codes import Code

from reconciler.lwm2m.codecs import ContentFormat, Value, decode, encode
from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.lwm2m import Path, RegistrationEvent

LINKS = b'</1/0>,</3/0>,</5/0>'


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Events:
    """Collects registration events; `next()` awaits the next one (no polling)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[RegistrationEvent] = asyncio.Queue()

    def __call__(self, event: RegistrationEvent) -> None:
        self.queue.put_nowait(event)

    async def next(self) -> RegistrationEvent:
        return await asyncio.wait_for(self.queue.get(), 5)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def server(clock: FakeClock) -> AsyncIterator[Lwm2mServer]:
    srv = Lwm2mServer("127.0.0.1", 0, admit=lambda ep: not ep.startswith("refused"),
                      clock=clock, awake_seconds=30.0, sweep_interval=0.01)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def events(server: Lwm2mServer) -> Events:
    collected = Events()
    server.subscribe(collected)
    return collected


@pytest.fixture
async def coap() -> AsyncIterator[Context]:
    """A client context: the test's registration client (one source port)."""
    ctx = await Context.create_client_context(transports=["udp6"])
    yield ctx
    await ctx.shutdown()


@pytest.fixture
def rd(server: Lwm2mServer) -> Callable[..., Awaitable[Message]]:
    """rd(ctx, code, "rd?ep=x", payload=b"", content_format=40) -> the response."""

    async def request(ctx: Context, code: Code, target: str, payload: bytes = b"",
                      content_format: int | None = 40) -> Message:
        message = Message(code=code, uri=f"coap://127.0.0.1:{server.port}/{target}",
                          payload=payload)
        if payload and content_format is not None:
            message.opt.content_format = content_format
        response: Message = await asyncio.wait_for(ctx.request(message).response, 5)
        return response

    return request


class RawSocket(asyncio.DatagramProtocol):
    """A plain UDP socket for hand-made datagrams; `receive()` awaits the next one."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait(data)

    def send(self, data: bytes) -> None:
        self.transport.sendto(data)

    async def receive(self) -> bytes:
        return await asyncio.wait_for(self.received.get(), 5)


async def open_raw(port: int) -> tuple[Any, RawSocket]:
    """(transport, RawSocket) connected to 127.0.0.1:`port`; close the transport after."""
    loop = asyncio.get_running_loop()
    return await loop.create_datagram_endpoint(RawSocket, remote_addr=("127.0.0.1", port))


def reset(mid: int) -> bytes:
    """The Reset (empty RST) a CoAP endpoint answers message id `mid` with."""
    return bytes((0x70, 0x00, mid >> 8, mid & 0xFF))


@pytest.fixture
async def raw(server: Lwm2mServer) -> AsyncIterator[RawSocket]:
    transport, protocol = await open_raw(server.port)
    yield protocol
    transport.close()


@pytest.fixture
def udp_peer() -> Iterator[socket.socket]:
    """A non-blocking UDP socket on a loopback port, for loop.sock_sendto/sock_recvfrom."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


# -- a tiny LwM2M device ---------------------------------------------------------------


@dataclass
class TinyDevice:
    """Serves a few resources of Objects 3 and 5 in the content formats it is given."""

    formats: tuple[int, ...] = (ContentFormat.TLV,)
    discover: bool = True
    values: dict[Path, Value] = field(default_factory=lambda: {
        Path(3, 0, 0): "ACME", Path(3, 0, 3): "1.0.0",
        Path(5, 0, 1): "", Path(5, 0, 3): 0, Path(5, 0, 5): 0})
    seen: list[tuple[str, str, int | None, Any]] = field(default_factory=list)
    executed: list[tuple[Path, bytes]] = field(default_factory=list)
    context: Any = None
    nodes: dict[Path, Any] = field(default_factory=dict)
    broken: bool = False  # answer reads with a payload that does not decode
    break_next: int = 0  # ... or only the next this many (notifications, too)

    def under(self, base: Path) -> dict[Path, Value]:
        n = len(base.segments())
        return {p: v for p, v in self.values.items() if p.segments()[:n] == base.segments()}

    def set(self, path: Path, value: Value) -> None:
        self.values[path] = value
        for node_path, node in self.nodes.items():
            if path.segments()[: len(node_path.segments())] == node_path.segments():
                node.updated_state()


class Node(resource.ObservableResource):  # type: ignore[misc]
    def __init__(self, device: TinyDevice, path: Path) -> None:
        super().__init__()
        self.device = device
        self.path = path

    def _note(self, request: Message) -> None:
        cf = request.opt.accept if request.code == Code.GET else request.opt.content_format
        self.device.seen.append((str(request.code), str(self.path),
                                 None if cf is None else int(cf), request.remote.sockaddr))

    async def render_get(self, request: Message) -> Message:
        self._note(request)
        accept = request.opt.accept
        if accept is not None and int(accept) == ContentFormat.LINK_FORMAT:
            if not self.device.discover:
                return Message(code=Code.NOT_IMPLEMENTED)
            links = ",".join(f"<{p}>" for p in sorted(self.device.under(self.path)))
            return Message(payload=links.encode(), content_format=40)
        fmt = self.device.formats[0] if accept is None else int(accept)
        if fmt not in self.device.formats:
            return Message(code=Code.NOT_ACCEPTABLE)
        payload = encode(fmt, self.path, self.device.under(self.path))
        if self.device.broken or self.device.break_next > 0:
            self.device.break_next -= 1
            payload = b"\xc8\x00\x14" if fmt == ContentFormat.TLV else b"\x9f{[garbage"
        return Message(payload=payload, content_format=fmt)

    async def render_put(self, request: Message) -> Message:
        return self._write(request)

    async def render_post(self, request: Message) -> Message:
        if self.path.resource is not None and request.opt.content_format is None:
            self._note(request)
            self.device.executed.append((self.path, request.payload))
            return Message(code=Code.CHANGED)
        return self._write(request)

    def _write(self, request: Message) -> Message:
        self._note(request)
        fmt = request.opt.content_format
        allowed = (*self.device.formats, ContentFormat.TEXT, ContentFormat.OPAQUE)
        if fmt is None or int(fmt) not in allowed:
            return Message(code=Code.UNSUPPORTED_CONTENT_FORMAT)
        for path, value in decode(int(fmt), self.path, request.payload).items():
            self.device.set(path, value)
        return Message(code=Code.CHANGED)


async def start_device(device: TinyDevice) -> TinyDevice:
    site = resource.Site()
    for path in (Path(3), Path(5), Path(3, 0), Path(3, 0, 3), Path(5, 0), Path(5, 0, 0),
                 Path(5, 0, 1), Path(5, 0, 2), Path(5, 0, 3)):
        node = Node(device, path)
        device.nodes[path] = node
        site.add_resource(tuple(str(s) for s in path.segments()), node)
    device.context = await Context.create_server_context(
        site, bind=("127.0.0.1", 0), transports=["udp6"])
    return device


@pytest.fixture
async def make_device() -> AsyncIterator[Callable[..., Awaitable[TinyDevice]]]:
    started: list[TinyDevice] = []

    async def make(**kwargs: Any) -> TinyDevice:
        device = await start_device(TinyDevice(**kwargs))
        started.append(device)
        return device

    yield make
    for device in started:
        await device.context.shutdown()


async def register_device(device: TinyDevice, server: Lwm2mServer, query: str,
                          links: bytes = LINKS) -> Message:
    """Register from the device's own socket, as a real client does."""
    message = Message(code=Code.POST, payload=links,
                      uri=f"coap://127.0.0.1:{server.port}/rd?{query}")
    message.opt.content_format = 40
    response: Message = await asyncio.wait_for(device.context.request(message).response, 5)
    assert response.code == Code.CREATED, response
    return response


@pytest.fixture
def enroll(server: Lwm2mServer) -> Callable[..., Awaitable[Message]]:
    """enroll(device, "ep=dev&lwm2m=1.1") registers the tiny device with the server."""

    async def run(device: TinyDevice, query: str, links: bytes = LINKS) -> Message:
        return await register_device(device, server, query, links)

    return run
