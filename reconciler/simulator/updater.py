"""The LwM2M Object 5 state machine of one simulated device, with its faults.

Idle -> Downloading (a /5/0/1 URI write, or the first Block1 block of a push to /5/0/0)
-> Downloaded (package verified by `firmware.verify`) -> Updating (Execute /5/0/2) -> the
device reboots into the new version and comes back Idle with Update Result 1. Failures
return to Idle with the spec's result code (4 link lost, 5 integrity, 6 unsupported,
7 invalid URI, 9 unsupported protocol); a failed install returns to Downloaded with 8.
An empty URI (or empty package) cancels. Called by `handlers`; owned by `device`.
"""

from __future__ import annotations

import array
import asyncio
from collections.abc import Coroutine, Mapping
from typing import Any, Protocol

from aiocoap import CHANGED, Code

from reconciler.model.lwm2m import DeliveryMethod, FirmwareState, UpdateResult
from reconciler.simulator import firmware, objects, transfer
from reconciler.simulator.faults import Fault
from reconciler.simulator.spec import DeviceSpec, Timing


class Host(Protocol):
    """What the state machine needs of its device."""

    faults: set[Fault]

    @property
    def version(self) -> str: ...
    def changed(self) -> None: ...
    def progressed(self) -> None: ...
    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]: ...
    def go_silent(self) -> None: ...
    async def reboot(self, version: str, result: UpdateResult) -> None: ...


class FirmwareUpdater:
    def __init__(self, host: Host, spec: DeviceSpec, timing: Timing,
                 catalog: Mapping[str, str]) -> None:
        self.host, self.spec, self.timing, self.catalog = host, spec, timing, catalog
        self.fw = objects.FirmwareObject(delivery=spec.delivery)
        self.push = transfer.PushReceiver(timing.flash_size)
        self.executes = self.downloads = 0
        self.blocks = 0  # Block2 answers received by pulls, including abandoned ones
        # each Block1 block of a push received (taken again or refused too): its number
        self.pushed = array.array("I")
        self.work: asyncio.Task[None] | None = None  # download or install in progress
        self._image_version = ""

    @property
    def busy(self) -> bool:
        """Downloading, pushing or installing: a queue-mode device stays awake."""
        busy_states = (FirmwareState.DOWNLOADING, FirmwareState.UPDATING)
        return self.fw.state in busy_states or self.push.active

    def write_package_uri(self, uri: str) -> Code:
        if uri == "":
            self.reset()
            return CHANGED
        if self.fw.delivery == DeliveryMethod.PUSH_ONLY or self.fw.state != FirmwareState.IDLE:
            return Code.METHOD_NOT_ALLOWED
        self.fw.package_uri = uri
        parsed = firmware.parse_uri(uri, secure=self.spec.psk is not None)
        if isinstance(parsed, UpdateResult):
            self.set(FirmwareState.IDLE, parsed)
            return CHANGED
        self.set(FirmwareState.DOWNLOADING, UpdateResult.INITIAL)
        if Fault.SILENT in self.host.faults:
            asyncio.get_running_loop().call_soon(self.host.go_silent)
        else:
            self.work = self.host.spawn(self._pull(parsed))
        return CHANGED

    def write_package(self, block: tuple[int, bool, int] | None,
                      payload: bytes) -> Code | None:
        """A write to /5/0/0: whole, or one Block1 block of a push (None: dropped)."""
        if block is None and payload in (b"", b"\0"):
            self.reset()
            return CHANGED
        if self.fw.delivery == DeliveryMethod.PULL_ONLY:
            return Code.METHOD_NOT_ALLOWED
        num, more, szx = block if block is not None else (0, False, 6)
        if num == 0 and self.fw.state != FirmwareState.IDLE and not self._pushed():
            return Code.METHOD_NOT_ALLOWED  # a push may restart, nothing else may interrupt
        return self._push_block(num, more, szx, payload)

    def _pushed(self) -> bool:
        """A push is under way (its partial transfer may have been let go)."""
        downloading = self.fw.state == FirmwareState.DOWNLOADING and not self.fw.package_uri
        return self.push.active or downloading

    def _push_block(self, num: int, more: bool, szx: int, payload: bytes) -> Code | None:
        self.pushed.append(num)
        if num == 0:
            self.set(FirmwareState.DOWNLOADING, UpdateResult.INITIAL)
            if Fault.SILENT in self.host.faults:
                asyncio.get_running_loop().call_soon(self.host.go_silent)
        if Fault.CONNECTION_LOST in self.host.faults and num >= 1:
            self.push.active = False
            self.set(FirmwareState.IDLE, UpdateResult.CONNECTION_LOST)
            return None  # the link is gone: this block never arrives
        code = self.push.receive(num, more, szx, payload)
        self.host.progressed()  # a waiter may be counting blocks
        if code == CHANGED:
            self._downloaded(bytes(self.push.data))
        elif code == Code.REQUEST_ENTITY_INCOMPLETE:
            pass  # the server may still resume at the right block, or start again at 0
        elif not code.is_successful() and code != Code.CONTINUE:
            self.set(FirmwareState.IDLE, UpdateResult.CONNECTION_LOST)
        return code

    def execute_update(self) -> Code:
        self.executes += 1
        if self.fw.state != FirmwareState.DOWNLOADED:
            self.host.changed()  # the count changed: someone may be waiting on it
            return Code.METHOD_NOT_ALLOWED
        self.set(FirmwareState.UPDATING, self.fw.result)
        self.work = self.host.spawn(self._install())
        return CHANGED

    async def _pull(self, uri: firmware.PackageUri) -> None:
        faults = self.host.faults
        options = transfer.PullOptions(
            block_size=self.spec.block_size, flash_size=self.timing.flash_size,
            slow_block_delay=self.timing.slow_block_delay if Fault.SLOW in faults else 0,
            lose_link=Fault.CONNECTION_LOST in faults, reliability=self.timing.reliability,
            on_block=self._count_block, psk=self.spec.psk)
        outcome = await transfer.download(uri, options)
        if isinstance(outcome, UpdateResult):
            self.set(FirmwareState.IDLE, outcome)
        else:
            self._downloaded(outcome)

    def _count_block(self) -> None:
        self.blocks += 1

    def _downloaded(self, data: bytes) -> None:
        if Fault.INTEGRITY in self.host.faults:
            data = bytes([data[0] ^ 0xFF]) + data[1:] if data else b"\xff"
        verdict = firmware.verify(data, self.catalog)
        if verdict.result == UpdateResult.INITIAL and Fault.UNSUPPORTED in self.host.faults:
            verdict = firmware.Verdict(UpdateResult.UNSUPPORTED_PACKAGE_TYPE)
        if verdict.result != UpdateResult.INITIAL:
            self.set(FirmwareState.IDLE, verdict.result)
            return
        self.downloads += 1
        self._image_version = verdict.version
        self.fw.pkg_name, self.fw.pkg_version = verdict.name, verdict.version
        self.set(FirmwareState.DOWNLOADED, UpdateResult.INITIAL)

    async def _install(self) -> None:
        await asyncio.sleep(self.timing.install_delay)
        if Fault.UPDATE_FAILED in self.host.faults:
            self.set(FirmwareState.DOWNLOADED, UpdateResult.UPDATE_FAILED)
            return
        # A reverting bootloader swaps back the old image; the client still believes
        # the update went through, so only /3/0/3 tells (the worst case to verify).
        reverts = Fault.REVERT in self.host.faults
        await self.host.reboot(self.host.version if reverts else self._image_version,
                               UpdateResult.SUCCESS)

    def rebooted(self, result: UpdateResult) -> None:
        """After a reboot: Idle, the given result, no package URI, nothing in flight."""
        self.push.active = False
        self.fw.state, self.fw.result, self.fw.package_uri = FirmwareState.IDLE, result, ""

    def abandon(self) -> None:
        """Stop a download or install in flight (reboot, silence, shutdown)."""
        if self.work is not None and self.work is not asyncio.current_task():
            self.work.cancel()

    def reset(self) -> None:
        if self.fw.state == FirmwareState.DOWNLOADING:
            self.abandon()
        self.push.active = False
        self.fw.package_uri = ""
        self.set(FirmwareState.IDLE, UpdateResult.INITIAL)

    def set(self, state: FirmwareState, result: UpdateResult) -> None:
        self.fw.state, self.fw.result = state, result
        self.host.changed()
