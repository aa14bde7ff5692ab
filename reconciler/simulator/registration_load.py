"""Registrations only, at scale: many endpoints over a few sockets, for load on a server.

A full `SimDevice` needs its own socket, so the fd limit caps a fleet at some thousands;
the 100,000-endpoint benchmarks only need the registration interface. `Registrar` spreads
N endpoints over `sockets` UDP sockets (several endpoints per source address, as behind a
NAT or an LwM2M gateway) and runs Register, Update and De-register rounds with at most
`in_flight` exchanges outstanding. Its endpoints answer no device management: requests
to them are dropped, as a sleeping device's would be. Used by `cmd --registrar`, bench/.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiocoap import CHANGED, CREATED, DELETED, Message

from reconciler.simulator import register_messages
from reconciler.simulator.coap import (
    DEFAULT_RELIABILITY,
    Addr,
    Endpoint,
    Reliability,
    RequestReset,
    RequestTimeout,
)


@dataclass(frozen=True, slots=True)
class RoundStats:
    ok: int
    failed: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0


class Registrar:
    def __init__(self, server: Addr, endpoints: Sequence[str], *, sockets: int = 64,
                 in_flight: int = 256, lifetime: int = 86400, lwm2m_version: str = "1.1",
                 reliability: Reliability = DEFAULT_RELIABILITY, host: str = "127.0.0.1") -> None:
        if sockets < 1 or in_flight < 1:
            raise ValueError("sockets and in_flight must be at least 1")
        self.server, self.endpoints = server, list(endpoints)
        self.lifetime, self.lwm2m_version = lifetime, lwm2m_version
        self.locations: dict[str, tuple[str, ...]] = {}
        self._slot = {endpoint: i for i, endpoint in enumerate(self.endpoints)}
        self._socks = [Endpoint(admit=self._from_server, reliability=reliability)
                       for _ in range(min(sockets, max(1, len(self.endpoints))))]
        self._host, self._in_flight = host, in_flight

    def _from_server(self, remote: Addr) -> bool:
        return remote == self.server

    async def open(self) -> None:
        for sock in self._socks:
            await sock.open(self._host, 0)

    def close(self) -> None:
        for sock in self._socks:
            sock.close()

    async def register_all(self) -> RoundStats:
        return await self._round(self.endpoints, self._register)

    async def update_all(self) -> RoundStats:
        return await self._round(list(self.locations), self._update)

    async def deregister_all(self) -> RoundStats:
        return await self._round(list(self.locations), self._deregister)

    async def _round(self, endpoints: list[str],
                     one: Callable[[Endpoint, str], Awaitable[bool]]) -> RoundStats:
        started, gate = time.perf_counter(), asyncio.Semaphore(self._in_flight)

        async def guarded(endpoint: str) -> bool:
            # An endpoint always speaks from the same socket, as the server expects.
            sock = self._socks[self._slot[endpoint] % len(self._socks)]
            async with gate:
                try:
                    return await one(sock, endpoint)
                except (RequestTimeout, RequestReset):
                    return False

        results = await asyncio.gather(*(guarded(ep) for ep in endpoints))
        ok = sum(results)
        return RoundStats(ok, len(results) - ok, time.perf_counter() - started)

    async def _register(self, sock: Endpoint, endpoint: str) -> bool:
        message = register_messages.register_message(endpoint, self.lifetime,
                                                self.lwm2m_version, False)
        response = await sock.request(message, self.server)
        if response.code != CREATED:
            return False
        self.locations[endpoint] = tuple(response.opt.location_path)
        return True

    async def _update(self, sock: Endpoint, endpoint: str) -> bool:
        message = register_messages.update_message(self.locations[endpoint])
        response: Message = await sock.request(message, self.server)
        return bool(response.code == CHANGED)

    async def _deregister(self, sock: Endpoint, endpoint: str) -> bool:
        message = register_messages.deregister_message(self.locations[endpoint])
        response = await sock.request(message, self.server)
        if response.code == DELETED:
            self.locations.pop(endpoint, None)
            return True
        return False
