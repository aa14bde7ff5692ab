"""One simulated LwM2M client: registration lifecycle, Object 5 state machine, reboots.

Registers with its server, sends Updates before the lifetime runs out (re-registering when
the server forgot it), de-registers on stop. Its socket answers only its server's address
and, in queue mode, only inside the listening window after it last spoke. The firmware
state machine follows LwM2M Object 5: Idle -> Downloading -> Downloaded -> Updating, and
Execute reboots it from a new socket into the new version (Update Result 1). Faults from
`faults` bite where a real device would fail. Requests are decoded by `handlers`; a
`Fleet` owns many of these. Tests await `wait_for`/`wait_version` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from aiocoap import CHANGED, CREATED, NOT_FOUND, Code, Message

from reconciler.model.lwm2m import DeliveryMethod, FirmwareState, UpdateResult
from reconciler.simulator import firmware, handlers, objects, registration, transfer
from reconciler.simulator.coap import Addr, Endpoint, Reliability, RequestReset, RequestTimeout
from reconciler.simulator.faults import Fault
from reconciler.simulator.observe import Observers


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    endpoint: str
    version: str = "1.0.0"  # firmware version reported in /3/0/3 at start
    lwm2m_version: str = "1.1"
    lifetime: int = 300
    queue_mode: bool = False
    delivery: DeliveryMethod = DeliveryMethod.PULL_ONLY
    block_size: int = 512
    faults: frozenset[Fault] = frozenset()
    model: str = "sim-1"
    manufacturer: str = "fota-gitops"


@dataclass(frozen=True, slots=True)
class Timing:
    """How fast simulated time runs; tests shorten everything."""

    update_every: float | None = None  # default: 3/4 of the lifetime
    queue_window: float = 10.0  # listening window after each Register/Update/send
    install_delay: float = 0.05  # time in Updating before the reboot
    reboot_delay: float = 0.1  # off the air while rebooting
    retry_delay: float = 5.0  # after a failed Register
    deregister_timeout: float = 10.0  # stop() gives up on a De-register after this
    slow_block_delay: float = 0.5
    flash_size: int = 16 * 1024 * 1024
    reliability: Reliability = field(default_factory=Reliability)
    host: str = "127.0.0.1"  # address the device sockets bind to


class SimDevice:
    def __init__(self, spec: DeviceSpec, server: Addr, catalog: Mapping[str, str],
                 timing: Timing) -> None:
        self.spec, self.server, self.catalog, self.timing = spec, server, catalog, timing
        self.endpoint = spec.endpoint
        self.faults: set[Fault] = set(spec.faults)
        self.info = objects.DeviceInfo(
            manufacturer=spec.manufacturer, model=spec.model, serial=f"SN-{spec.endpoint}",
            firmware_version=spec.version, lifetime=spec.lifetime,
            binding=registration.binding_of(spec.lwm2m_version, spec.queue_mode))
        self.fw = objects.FirmwareObject(delivery=spec.delivery)
        self.observers = Observers()
        self.attributes: dict[Any, str] = {}
        self.push = transfer.PushReceiver(timing.flash_size)
        self.location: tuple[str, ...] | None = None
        self.silent = False
        self.executes = self.downloads = self.registrations = self.updates = self.reboots = 0
        self._sock = Endpoint(self._on_request, self._admits, timing.reliability)
        self._booting = False
        self._awake_until = 0.0
        self._sleep_timer: asyncio.TimerHandle | None = None
        self._image_version = ""
        self._wake = asyncio.Event()
        self._lifecycle: asyncio.Task[None] | None = None
        self._work: asyncio.Task[None] | None = None  # download or install in progress
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
        await self._sock.open(self.timing.host, 0)
        self._lifecycle = asyncio.create_task(self._run())

    async def stop(self, deregister: bool = True) -> None:
        for task in (self._lifecycle, self._work, *self._tasks):
            if task is not None:
                task.cancel()
        for task in (self._lifecycle, self._work, *self._tasks):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if deregister and self.location is not None and not self.silent:
            with contextlib.suppress(RequestTimeout, RequestReset, TimeoutError):
                await asyncio.wait_for(self._send(
                    registration.deregister_message(self.location)),
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
        for task in (self._lifecycle, self._work):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        self._changed()

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
        message = registration.register_message(
            self.endpoint, self.info.lifetime, self.spec.lwm2m_version, self.spec.queue_mode)
        try:
            response = await self._send(message)
        except (RequestTimeout, RequestReset):
            return False
        if response.code != CREATED:
            return False
        self.location = tuple(response.opt.location_path) or ("rd",)
        self.registrations += 1
        self._changed()
        return True

    async def _update(self) -> bool:
        """One registration Update; False when the device must register again."""
        assert self.location is not None
        try:
            response = await self._send(registration.update_message(self.location))
        except (RequestTimeout, RequestReset):
            return False
        if response.code == NOT_FOUND or not response.code.is_successful():
            self.location = None
            return False
        self.updates += 1
        self._changed()
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
                self.timing.queue_window, self._changed)

    # -- requests -------------------------------------------------------------------
    def _admits(self, remote: Addr) -> bool:
        if self.silent or self._booting or remote != self.server:
            return False
        return not self.spec.queue_mode or self.awake

    @property
    def awake(self) -> bool:
        """In queue mode: inside the listening window, or busy with an update."""
        busy = self.fw.state in (FirmwareState.DOWNLOADING, FirmwareState.UPDATING)
        return busy or self.push.active or time.monotonic() < self._awake_until

    def _on_request(self, message: Message, remote: Addr) -> Message | None:
        return handlers.handle(self, message, remote)

    def read_values(self) -> dict[Any, Any]:
        return objects.snapshot(self.info, self.fw, int(time.time()))

    # -- Object 5 state machine --------------------------------------------------------
    def write_package_uri(self, uri: str) -> Code:
        if uri == "":
            self._reset_firmware()
            return CHANGED
        if self.fw.delivery == DeliveryMethod.PUSH_ONLY or self.fw.state != FirmwareState.IDLE:
            return Code.METHOD_NOT_ALLOWED
        self.fw.package_uri = uri
        parsed = firmware.parse_uri(uri)
        if isinstance(parsed, UpdateResult):
            self._set(FirmwareState.IDLE, parsed)
            return CHANGED
        self._set(FirmwareState.DOWNLOADING, UpdateResult.INITIAL)
        if Fault.SILENT in self.faults:
            asyncio.get_running_loop().call_soon(self.go_silent)
        else:
            self._work = self._spawn(self._pull(parsed))
        return CHANGED

    def write_package(self, block: tuple[int, bool, int] | None,
                      payload: bytes) -> Code | None:
        """A write to /5/0/0: whole, or one Block1 block of a push."""
        if block is None and payload in (b"", b"\0"):
            self._reset_firmware()
            return CHANGED
        if self.fw.delivery == DeliveryMethod.PULL_ONLY:
            return Code.METHOD_NOT_ALLOWED
        num, more, szx = block if block is not None else (0, False, 6)
        if num == 0 and self.fw.state != FirmwareState.IDLE and not self.push.active:
            return Code.METHOD_NOT_ALLOWED  # a push may restart, nothing else may interrupt
        return self._push_block(num, more, szx, payload)

    def _push_block(self, num: int, more: bool, szx: int, payload: bytes) -> Code | None:
        if num == 0:
            self._set(FirmwareState.DOWNLOADING, UpdateResult.INITIAL)
            if Fault.SILENT in self.faults:
                asyncio.get_running_loop().call_soon(self.go_silent)
        if Fault.CONNECTION_LOST in self.faults and num >= 1:
            self.push.active = False
            self._set(FirmwareState.IDLE, UpdateResult.CONNECTION_LOST)
            return None  # the link is gone: this block never arrives
        code = self.push.receive(num, more, szx, payload)
        if code == CHANGED:
            self._downloaded(bytes(self.push.data))
        elif not code.is_successful() and code != Code.CONTINUE:
            self._set(FirmwareState.IDLE, UpdateResult.CONNECTION_LOST)
        return code

    def execute_update(self) -> Code:
        self.executes += 1
        if self.fw.state != FirmwareState.DOWNLOADED:
            self._changed()  # the count changed: someone may be waiting on it
            return Code.METHOD_NOT_ALLOWED
        self._set(FirmwareState.UPDATING, self.fw.result)
        self._work = self._spawn(self._install())
        return CHANGED

    def reboot_now(self) -> None:
        """Execute on /3/0/4: reboot into the same firmware."""
        self._spawn(self._reboot(self.version, self.fw.result))

    async def _pull(self, uri: firmware.PackageUri) -> None:
        options = transfer.PullOptions(
            block_size=self.spec.block_size, flash_size=self.timing.flash_size,
            slow_block_delay=self.timing.slow_block_delay if Fault.SLOW in self.faults else 0,
            lose_link=Fault.CONNECTION_LOST in self.faults,
            reliability=self.timing.reliability)
        outcome = await transfer.download(uri, options)
        if isinstance(outcome, UpdateResult):
            self._set(FirmwareState.IDLE, outcome)
        else:
            self._downloaded(outcome)

    def _downloaded(self, data: bytes) -> None:
        if Fault.INTEGRITY in self.faults:
            data = bytes([data[0] ^ 0xFF]) + data[1:] if data else b"\xff"
        verdict = firmware.verify(data, self.catalog)
        if verdict.result == UpdateResult.INITIAL and Fault.UNSUPPORTED in self.faults:
            verdict = firmware.Verdict(UpdateResult.UNSUPPORTED_PACKAGE_TYPE)
        if verdict.result != UpdateResult.INITIAL:
            self._set(FirmwareState.IDLE, verdict.result)
            return
        self.downloads += 1
        self._image_version = verdict.version
        self.fw.pkg_name, self.fw.pkg_version = verdict.name, verdict.version
        self._set(FirmwareState.DOWNLOADED, UpdateResult.INITIAL)

    async def _install(self) -> None:
        await asyncio.sleep(self.timing.install_delay)
        if Fault.UPDATE_FAILED in self.faults:
            self._set(FirmwareState.DOWNLOADED, UpdateResult.UPDATE_FAILED)
            return
        # A reverting bootloader swaps back the old image; the client still believes
        # the update went through, so only /3/0/3 tells (the worst case to verify).
        version = self.version if Fault.REVERT in self.faults else self._image_version
        await self._reboot(version, UpdateResult.SUCCESS)

    async def _reboot(self, version: str, result: UpdateResult) -> None:
        self._booting = True
        for task in (self._lifecycle, self._work):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        fresh = Endpoint(self._on_request, self._admits, self.timing.reliability)
        await fresh.open(self.timing.host, 0)  # opened before the old closes: a new port
        self._sock.close()
        self._sock, self.location = fresh, None
        self.observers.clear()
        await asyncio.sleep(self.timing.reboot_delay)
        self.info = replace(self.info, firmware_version=version)
        self.fw.state, self.fw.result, self.fw.package_uri = FirmwareState.IDLE, result, ""
        self.reboots += 1
        self._booting = False
        self._lifecycle = asyncio.create_task(self._run())

    def _reset_firmware(self) -> None:
        if self._work is not None and self.fw.state == FirmwareState.DOWNLOADING:
            self._work.cancel()
        self.push.active = False
        self.fw.package_uri = ""
        self._set(FirmwareState.IDLE, UpdateResult.INITIAL)

    def _set(self, state: FirmwareState, result: UpdateResult) -> None:
        self.fw.state, self.fw.result = state, result
        self._changed()

    # -- change propagation -----------------------------------------------------------
    def _changed(self) -> None:
        if not self.silent and self._sock.is_open:
            for message, remote in self.observers.changed(self._render):
                self._stay_awake()
                self._spawn(self._notify(message, remote))
        for predicate, future in list(self._waiters):
            if not future.done() and predicate():
                future.set_result(None)

    async def _notify(self, message: Message, remote: Addr) -> None:
        if not await self._sock.notify(message, remote):
            self.observers.cancel(message.token)
            self._changed()

    def _render(self, path: Any, fmt: int) -> bytes | None:
        return handlers.render(self, path, fmt)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
