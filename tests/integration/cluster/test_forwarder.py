"""The test balancer keeps each client with one backend, and moves only a dead backend's
clients (what nginx `hash $remote_addr consistent` and IPVS `sh` do for the nodes)."""

from __future__ import annotations

import asyncio
from typing import Any

from forwarder import Address, start_forwarder


class Echo(asyncio.DatagramProtocol):
    """A backend that answers each datagram with its own name and the sender's port."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(f"{self.name} {addr[1]}".encode(), addr)


class Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answers: asyncio.Queue[str] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.answers.put_nowait(data.decode())


async def _ask(transport: Any, client: Client) -> tuple[str, str]:
    transport.sendto(b"?")
    name, port = (await asyncio.wait_for(client.answers.get(), 5)).split()
    return name, port


async def test_each_client_stays_with_one_backend_and_only_a_dead_ones_clients_move() -> None:
    loop = asyncio.get_running_loop()
    backends: list[tuple[Any, Address]] = []
    for name in ("n1", "n2", "n3"):
        transport, _ = await loop.create_datagram_endpoint(lambda n=name: Echo(n),
                                                           local_addr=("127.0.0.1", 0))
        backends.append((transport, transport.get_extra_info("sockname")[:2]))
    forwarder = await start_forwarder([address for _, address in backends])
    clients = [await loop.create_datagram_endpoint(Client, remote_addr=forwarder.address)
               for _ in range(30)]
    try:
        first = [await _ask(t, c) for t, c in clients]
        again = [await _ask(t, c) for t, c in clients]
        assert first == again  # the same backend, through the same session
        assert len({name for name, _ in first}) == 3  # spread over all of them
        dead = backends[0][1]
        forwarder.drop(dead)
        after = [await _ask(t, c) for t, c in clients]
    finally:
        for transport, _ in clients:
            transport.close()
        forwarder.close()
        for transport, _ in backends:
            transport.close()
    for (name, port), (moved, new_port) in zip(first, after, strict=True):
        if name == "n1":
            assert moved in ("n2", "n3") and new_port != port
        else:
            assert (moved, new_port) == (name, port)
