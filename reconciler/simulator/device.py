"""One simulated LwM2M client: registration lifecycle, reboots, observers, inspection.

Registers with its server, sends Updates before the lifetime runs out (re-registering when
the server forgot it, backing off when refused), de-registers on stop. Its socket answers
only its server's address and, in queue mode, only inside the listening window after it
last spoke. A reboot (after a successful install, or Execute /3/0/4) comes back from a NEW
socket and registers again. The Object 5 state machine is `updater`; requests are decoded
by `handlers`; a `Fleet` owns many devices. Tests await `wait_for`/`wait_version`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from typing import Any

from aiocoap import CREATED, NOT_FOUND, Message

from reconciler.lwm2m.codecs import Value
from reconciler.model.lwm2m import FirmwareState, Path, UpdateResult
from reconciler.simulator import handlers, objects, register_messages
from reconciler.simulator.coap import Addr, Endpoint, RequestReset, RequestTimeout
from reconciler.simulator.faults import Fault
from reconciler.simulator.observe import Observers
from reconciler.simulator.spec import DeviceSpec, Timing
from reconciler.simulator.updater import FirmwareUpdater

__all__ = ["DeviceSpec", "SimDevice", "Timing"]


class SimDevice:
    def __init__(self, spec: DeviceSpec, server: Addr, catalog: Mapping[str, str],
                 timing: Timing) -> None:
        self.spec, self.server, self.catalog, self.timing = spec, server, catalog, timing
        self.endpoint = spec.endpoint
        self.faults: set[Fault] = set(spec.faults)
        self.info = objects.DeviceInfo(
            manufacturer=spec.manufacturer, model=spec.model, serial=f"SN-{spec.endpoint}",
            firmware_version=spec.version, lifetime=spec.lifetime,
            binding=register_messages.binding_of(spec.lwm2m_version, spec.queue_mode))
        self.updater = FirmwareUpdater(self, spec, timing, catalog)
        self.fw = self.updater.fw
        self.observers = Observers()
        self.attributes: dict[Path, str] = {}  # Write-Attributes, shown by Discover
        self.location: tuple[str, ...] | None = None
        self.silent = False
        self.registrations = self.updates = self.reboots = 0
        self.register_attempts = 0  # answered, refused or timed out
        self.dropped_asleep = 0  # datagrams from the server that came while it slept
        # The server's requests, by what they were ("GET /5/0 observe", "PUT /5/0/0" for
        # each pushed block): what a rollout costs the device. Exchanges, not datagrams:
        # a retransmission is answered again from the socket's cache, uncounted.
        self.requests: collections.Counter[str] = collections.Counter()
        self._sock = Endpoint(self._on_request, self._admits, timing.reliability)
        self._booting = False
        self._awake_until = 0.0
        self._sleep_timer: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()
        self._lifecycle: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    # -- inspection -----------------------------------------------------------
    @property
    def version(self) -> str:
        return self.info.firmware_version

    @property
    def state(self) -> FirmwareState:
        return self.fw.state

    @property
    def result(self) -> UpdateResult:
        return self.fw.result

    @property
    def executes(self) -> int:
        """Execute requests on /5/0/2 received (accepted or refused)."""
        return self.updater.executes

    @property
    def downloads(self) -> int:
        """Packages downloaded or pushed and verified."""
        return self.updater.downloads

    @property
    def blocks(self) -> int:
        """Firmware blocks received by pulls (a restarted download counts them again)."""
        return self.updater.blocks

    @property
    def blocks_pushed(self) -> int:
        """Block1 blocks of pushes received (a block received again counts again)."""
        return len(self.updater.pushed)

    @property
    def pushed_blocks(self) -> list[int]:
        """The block number of every push block received, in order: where a push began,
        stopped and resumed."""
        return list(self.updater.pushed)

    @property
    def registered(self) -> bool:
        return self.location is not None

    @property
    def port(self) -> int:
        return self._sock.local_port

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None = 30.0) -> None:
        """Return once `predicate()` holds (checked after every change of this device)."""
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)

    async def wait_version(self, version: str, timeout: float | None = 30.0) -> None:
        await self.wait_for(lambda: self.version == version and self.registered, timeout)

    async def wait_state(self, state: FirmwareState, result: UpdateResult | None = None,
                         timeout: float | None = 30.0) -> None:
        await self.wait_for(lambda: self.state == state
                            and (result is None or self.result == result), timeout)

    async def wait_registered(self, count: int = 1, timeout: float | None = 30.0) -> None:
        """Until this device has completed `count` Registers (and is registered)."""
        await self.wait_for(lambda: self.registrations >= count and self.registered, timeout)

    # -- lifecycle --------------------------------------------------------------
    async def start(self) -> None:
        await self._sock.open(self.timing.host, 0, self.spec.psk)
        self._lifecycle = asyncio.create_task(self._run())

    async def stop(self, deregister: bool = True) -> None:
        tasks = [task for task in (self._lifecycle, *self._tasks) if task is not None]
        for task in tasks:
            task.cancel()
        # gather, not a suppressed await per task: a stop() that is itself cancelled
        # (a bounded shutdown) must end, not go on to de-register.
        await asyncio.gather(*tasks, return_exceptions=True)
        if deregister and self.location is not None and not self.silent:
            with contextlib.suppress(RequestTimeout, RequestReset, TimeoutError):
                await asyncio.wait_for(self._send(
                    register_messages.deregister_message(self.location)),
                    self.timing.deregister_timeout)
        self.location = None
        if self._sleep_timer is not None:
            self._sleep_timer.cancel()
        self._sock.close()

    def inject(self, fault: Fault) -> None:
        self.faults.add(fault)

    def clear(self, fault: Fault) -> None:
        self.faults.discard(fault)

    def go_silent(self) -> None:
        """Off the air for good: no answers, no Updates, any transfer abandoned."""
        self.silent = True
        if self._lifecycle is not None and self._lifecycle is not asyncio.current_task():
            self._lifecycle.cancel()
        self.updater.abandon()
        self.changed()

    def trigger_update(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        failures = 0
        while True:
            if not await self._register():
                # Back off exponentially, as clients must not hammer a refusing server.
                await self._pause(min(self.timing.retry_delay * 2**failures, 300.0))
                failures = min(failures + 1, 16)
                continue
            failures = 0
            while True:
                await self._pause(self._update_every())
                if not await self._update():
                    break

    def _update_every(self) -> float:
        every = self.timing.update_every
        return every if every is not None else max(1.0, self.info.lifetime * 0.75)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _register(self) -> bool:
        message = register_messages.register_message(
            self.endpoint, self.info.lifetime, self.spec.lwm2m_version, self.spec.queue_mode)
        try:
            response = await self._send(message)
        except (RequestTimeout, RequestReset):
            response = None
            self._sock.renew_sessions()  # the next attempt in a new session, if secured
        self.register_attempts += 1
        if response is None or response.code != CREATED:
            self.changed()
            return False
        self.location = tuple(response.opt.location_path) or ("rd",)
        self.registrations += 1
        self.changed()
        return True

    async def _update(self) -> bool:
        """One registration Update; False when the device must register again."""
        assert self.location is not None
        try:
            response = await self._send(register_messages.update_message(self.location))
        except (RequestTimeout, RequestReset):
            if self.spec.psk is None:
                return False
            # The server may have lost our session (a restart) and cannot say so: a
            # secured client starts a new one and sends the Update once more in it.
            self._sock.renew_sessions()
            try:
                response = await self._send(register_messages.update_message(self.location))
            except (RequestTimeout, RequestReset):
                return False
        if response.code == NOT_FOUND or not response.code.is_successful():
            self.location = None
            return False
        self.updates += 1
        self.changed()
        return True

    async def _send(self, message: Message) -> Message:
        self._stay_awake()
        response = await self._sock.request(message, self.server)
        self._stay_awake()
        return response

    def _stay_awake(self) -> None:
        """A client listens for a window after it last sent (queue mode), then sleeps;
        falling asleep is a change waiters may be waiting for."""
        self._awake_until = time.monotonic() + self.timing.queue_window
        if self.spec.queue_mode:
            if self._sleep_timer is not None:
                self._sleep_timer.cancel()
            self._sleep_timer = asyncio.get_running_loop().call_later(
                self.timing.queue_window, self.changed)

    # -- requests -------------------------------------------------------------------
    def _admits(self, remote: Addr) -> bool:
        if self.silent or remote != self.server:
            return False
        if self.spec.queue_mode and not self.awake:
            self.dropped_asleep += 1  # a server that honours queue mode never causes this
            return False
        return not self._booting

    @property
    def awake(self) -> bool:
        """In queue mode: inside the listening window, or busy with an update."""
        return self.updater.busy or time.monotonic() < self._awake_until

    def _on_request(self, message: Message, remote: Addr) -> Message | None:
        self.requests[handlers.describe(message)] += 1
        return handlers.handle(self, message, remote)

    def read_values(self) -> dict[Path, Value]:
        return objects.snapshot(self.info, self.fw, int(time.time()))

    # -- reboot -----------------------------------------------------------------------
    def reboot_now(self) -> None:
        """Execute on /3/0/4: reboot into the same firmware."""
        self.spawn(self.reboot(self.version, self.fw.result))

    async def reboot(self, version: str, result: UpdateResult) -> None:
        """Drop off the air, come back from a new socket on `version`, register again."""
        self._booting = True
        if self._lifecycle is not None:
            self._lifecycle.cancel()
        self.updater.abandon()
        fresh = Endpoint(self._on_request, self._admits, self.timing.reliability)
        # opened before the old closes: a new port (and with a PSK, a new handshake)
        await fresh.open(self.timing.host, 0, self.spec.psk)
        self._sock.close()
        self._sock, self.location = fresh, None
        self.observers.clear()
        await asyncio.sleep(self.timing.reboot_delay)
        self.info = replace(self.info, firmware_version=version)
        self.updater.rebooted(result)
        self.reboots += 1
        self._booting = False
        self._lifecycle = asyncio.create_task(self._run())

    # -- change propagation -----------------------------------------------------------
    def changed(self) -> None:
        """After any change: notify observers whose value moved, wake matching waiters."""
        if not self.silent and self._sock.is_open:
            for message, remote in self.observers.changed(self._render):
                self._stay_awake()
                self.spawn(self._notify(message, remote))
        self.progressed()

    def progressed(self) -> None:
        """After a block of a push arrived (nothing an observer sees): wake waiters."""
        for predicate, future in list(self._waiters):
            if not future.done() and predicate():
                future.set_result(None)

    async def _notify(self, message: Message, remote: Addr) -> None:
        if not await self._sock.notify(message, remote):
            self.observers.cancel(message.token)
            self.changed()

    def _render(self, path: Path, fmt: int) -> bytes | None:
        return handlers.render(self, path, fmt)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
