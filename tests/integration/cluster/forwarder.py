"""A small UDP forwarder with source-address affinity, standing in for nginx `stream`
(`hash $remote_addr consistent`) or IPVS source hashing in front of several nodes.

Each client source (host, port) is sent to one backend chosen by rendezvous hashing over
the backends in service, through a socket of its own (so the backend sees one address per
client, as behind a real balancer, and its requests to the device come back through the
same session). `drop(backend)` takes a backend out of service, as a health check does when
a node dies: only its clients move, the next datagram of each going to another backend
through a new session (a new source port, as a real balancer's new session has). Sessions
are bounded (`MAX_SESSIONS`) and each closes with the forwarder. Loopback only.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

Address = tuple[str, int]
MAX_SESSIONS = 20_000


def _weight(client: Address, backend: Address) -> bytes:
    return hashlib.blake2b(f"{client[0]}:{client[1]}|{backend[0]}:{backend[1]}".encode(),
                           digest_size=8).digest()


class _Upstream(asyncio.DatagramProtocol):
    """One client's session towards its backend: what comes back goes to the client."""

    def __init__(self, forwarder: Forwarder, client: Address) -> None:
        self.forwarder, self.client = forwarder, client
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.forwarder.to_client(data, self.client)


class Forwarder(asyncio.DatagramProtocol):
    def __init__(self, backends: list[Address]) -> None:
        self.backends = list(backends)
        self.transport: Any = None
        self.sessions: dict[Address, tuple[Address, _Upstream]] = {}
        self.forwarded = 0

    @property
    def address(self) -> Address:
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def backend_for(self, client: Address) -> Address:
        """Rendezvous hashing: a client stays with its backend while it is in service."""
        return max(self.backends, key=lambda backend: _weight(client, backend))

    def drop(self, backend: Address) -> None:
        self.backends.remove(backend)
        for client, (chosen, upstream) in list(self.sessions.items()):
            if chosen == backend:
                upstream.transport.close()
                del self.sessions[client]

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        client = (str(addr[0]), int(addr[1]))
        session = self.sessions.get(client)
        if session is None:
            if len(self.sessions) >= MAX_SESSIONS or not self.backends:
                return  # as a balancer out of sessions or backends: dropped
            asyncio.get_running_loop().create_task(self._open(client, data))
            return
        self.forwarded += 1
        session[1].transport.sendto(data)

    async def _open(self, client: Address, first: bytes) -> None:
        backend = self.backend_for(client)
        if client in self.sessions:  # two first datagrams raced: one session
            self.sessions[client][1].transport.sendto(first)
            return
        _, upstream = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Upstream(self, client), remote_addr=backend)
        if client in self.sessions:
            upstream.transport.close()
            self.sessions[client][1].transport.sendto(first)
            return
        self.sessions[client] = (backend, upstream)
        self.forwarded += 1
        upstream.transport.sendto(first)

    def to_client(self, data: bytes, client: Address) -> None:
        if self.transport is not None:
            self.transport.sendto(data, client)

    def close(self) -> None:
        for _, upstream in self.sessions.values():
            upstream.transport.close()
        self.sessions.clear()
        if self.transport is not None:
            self.transport.close()


async def start_forwarder(backends: list[Address]) -> Forwarder:
    """A forwarder on a free loopback port; close() it when done."""
    _, forwarder = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: Forwarder(backends), local_addr=("127.0.0.1", 0))
    return forwarder
