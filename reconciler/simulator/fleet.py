"""A fleet of simulated devices in one asyncio process: the Python API of the simulator.

`Fleet(server_uri, devices=[DeviceSpec(...)], catalog={sha256: version})` starts every
device (one UDP socket each, bounded start-up concurrency so 1,000 devices register
without a burst), looks devices up by endpoint and stops them all (de-registering).
Tests and benchmarks use it directly; `fota simulate` (`cmd`) builds one from a repo.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from reconciler.simulator.coap import Addr
from reconciler.simulator.device import SimDevice
from reconciler.simulator.faults import Fault, assign_faults
from reconciler.simulator.spec import DeviceSpec, Timing


def make_specs(endpoints: Sequence[str], shares: Sequence[tuple[Fault, float]] = (),
               seed: int = 0, **common: Any) -> list[DeviceSpec]:
    """DeviceSpecs for `endpoints` sharing `common` fields, with faults spread by share,
    e.g. `make_specs([f"d{i}" for i in range(100)], [(Fault.INTEGRITY, 0.1)])`."""
    faults = assign_faults(endpoints, shares, seed)
    return [DeviceSpec(endpoint=ep, faults=faults[ep], **common) for ep in endpoints]


def parse_server_uri(uri: str) -> tuple[str, int]:
    """coap://HOST[:PORT] or coaps://HOST[:PORT] -> (host, port); else a ValueError."""
    parts = urlsplit(uri)
    if parts.scheme not in ("coap", "coaps") or not parts.hostname:
        raise ValueError(f"server must be a coap://HOST[:PORT] (or coaps://) URI, not {uri!r}")
    return parts.hostname, parts.port or (5684 if parts.scheme == "coaps" else 5683)


def resolve_server(uri: str) -> Addr:
    host, port = parse_server_uri(uri)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    # IPv4 first: "localhost" should not pick ::1 for a server bound to 127.0.0.1.
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    address = infos[0][4]
    return str(address[0]), int(address[1])


class Fleet:
    def __init__(self, server_uri: str, devices: Sequence[DeviceSpec],
                 catalog: Mapping[str, str] | None = None, timing: Timing | None = None,
                 start_concurrency: int = 64) -> None:
        self.server = resolve_server(server_uri)
        self.timing = timing or Timing()
        if ":" in self.server[0] and ":" not in self.timing.host:
            self.timing = replace(self.timing, host="::1")  # an IPv6 server: IPv6 sockets
        # kept, not copied: a RepoCatalog follows its repository while the fleet runs
        self.catalog: Mapping[str, str] = catalog if catalog is not None else {}
        self._concurrency = start_concurrency
        self._devices = {spec.endpoint: SimDevice(spec, self.server, self.catalog,
                                                  self.timing) for spec in devices}
        if len(self._devices) != len(devices):
            raise ValueError("endpoint names in a fleet must be unique")

    def __len__(self) -> int:
        return len(self._devices)

    def device(self, endpoint: str) -> SimDevice:
        return self._devices[endpoint]

    def devices(self) -> list[SimDevice]:
        return list(self._devices.values())

    async def start(self, wait_registered: bool = False, timeout: float = 60.0) -> None:
        """Open every socket and register, at most `start_concurrency` first Registers in
        flight (a thousand at once only makes the server drop and everyone retransmit);
        with `wait_registered`, fail unless all are registered within `timeout`."""
        gate = asyncio.Semaphore(self._concurrency)

        async def one(device: SimDevice) -> None:
            async with gate:
                await device.start()
                with contextlib.suppress(TimeoutError):  # a dead server must not stall start
                    await device.wait_for(lambda: device.register_attempts > 0,
                                          min(timeout, 5.0))

        await asyncio.gather(*(one(d) for d in self._devices.values()))
        if wait_registered:
            await self.wait_all(lambda d: d.registered, timeout)

    async def stop(self, deregister: bool = True) -> None:
        """Stop every device, De-registering as many at once as at start-up, the whole
        fleet within one `timing.deregister_timeout`: a server that is gone costs that
        once, not once per device (or per start-up batch). Whoever has not de-registered
        by then is stopped without (its registration expires with its lifetime)."""
        if deregister:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timing.deregister_timeout):
                    await self._each(lambda device: device.stop(True))
        # Closes the sockets of those the deadline cut short; a no-op for the others.
        await self._each(lambda device: device.stop(False))

    async def _each(self, work: Callable[[SimDevice], Awaitable[None]]) -> None:
        gate = asyncio.Semaphore(self._concurrency)

        async def one(device: SimDevice) -> None:
            async with gate:
                await work(device)

        await asyncio.gather(*(one(d) for d in self._devices.values()))

    async def wait_all(self, predicate: Callable[[SimDevice], bool],
                       timeout: float | None = 60.0,
                       devices: Iterable[SimDevice] | None = None) -> None:
        """Until `predicate(device)` holds for every (chosen) device."""
        chosen = list(devices) if devices is not None else self.devices()
        await asyncio.gather(*(_wait_one(d, predicate, timeout) for d in chosen))

    async def wait_any(self, predicate: Callable[[SimDevice], bool],
                       timeout: float | None = 60.0) -> SimDevice:
        """The first device for which `predicate(device)` holds (the other waits end)."""
        waits = {asyncio.ensure_future(_wait_one(d, predicate, timeout)): d
                 for d in self._devices.values()}
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is None:
                    return waits[task]
            raise TimeoutError(f"no device satisfied the condition within {timeout} s")
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    def versions(self) -> dict[str, str]:
        return {ep: d.version for ep, d in self._devices.items()}

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def _wait_one(device: SimDevice, predicate: Callable[[SimDevice], bool],
                    timeout: float | None) -> None:
    await device.wait_for(lambda: predicate(device), timeout)
