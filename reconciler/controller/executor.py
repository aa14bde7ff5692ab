"""The executor: the one place that turns engine actions into LwM2M requests.

The controller persists the decision's progress record first and then hands each action to
`Executor.run`; results flow back only as observed state (reports in the store, Observe
notifications), never as return values, so the next `decide()` decides from the store
alone. A transport error right after Execute is expected (the device reboots) and is
swallowed; a push is only started (the server runs it and records how it ended, which
the engine reads); other errors propagate as the error tree's kinds for the work queue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import assert_never

from reconciler.controller.config import ControllerConfig
from reconciler.controller.reports import Reports, version_in
from reconciler.controller.watches import Watches
from reconciler.engine import actions as act
from reconciler.errors import DeviceRequestFailed, TemporaryError, WaitingError
from reconciler.lwm2m.codecs import Value
from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.desired import Device
from reconciler.model.lwm2m import (
    DEV_FIRMWARE_VERSION,
    FW_DELIVERY_METHOD,
    FW_PACKAGE_URI,
    FW_STATE,
    FW_UPDATE,
    FW_UPDATE_RESULT,
    Path,
)

log = logging.getLogger("reconciler.executor")

READS = (Path(3, 0), Path(5, 0))
FALLBACK_READS = (Path(3, 0, 3), Path(5, 0, 3), Path(5, 0, 5))  # when a whole instance fails
PROBES = (FW_STATE, FW_UPDATE_RESULT, DEV_FIRMWARE_VERSION)  # after an Execute
# What a device that came back on its target may have changed in /5/0 and was not read.
UNKNOWN_AFTER_UPDATE = (FW_STATE, FW_UPDATE_RESULT, FW_DELIVERY_METHOD)


class Executor:
    def __init__(self, server: Lwm2mServer, reports: Reports, watches: Watches,
                 images: Callable[[str], Awaitable[bytes]], settings: ControllerConfig,
                 on_notify: Callable[[Device, dict[Path, Value]], None],
                 clock: Callable[[], float] = time.time) -> None:
        self._server, self._reports, self._watches = server, reports, watches
        self._images, self._settings, self._clock = images, settings, clock
        self._on_notify = on_notify

    async def run(self, device: Device, action: act.Action) -> None:
        if isinstance(action, act.ReadState):
            await self.read_state(device, READS[1:] if action.firmware_only else READS)
        elif isinstance(action, act.Verify):
            await self._verify(device, action)
        elif isinstance(action, act.Probe):
            await self._probe(device)
        elif isinstance(action, act.Observe):
            await self._observe(device, action)
        elif isinstance(action, act.WriteUri):
            await self._write_uri(device, action)
        elif isinstance(action, act.PushPackage):
            await self._push(device, action)
        elif isinstance(action, act.Execute):
            await self._execute(device)
        elif isinstance(action, act.CancelDownload):
            await self._cancel(device)
        elif isinstance(action, act.Wait | act.NoOp):
            pass  # nothing to send: the controller requeues from the decision
        else:
            assert_never(action)

    async def read_state(self, device: Device, instances: tuple[Path, ...] = READS) -> None:
        values: dict[Path, object] = {}
        for path in instances:
            values.update(await self._read_instance(device, path))
        self._reports.merge(device.device_id, device.endpoint, values, self._clock())

    async def _verify(self, device: Device, action: act.Verify) -> None:
        """After the Register that follows an Execute: /3/0, then /5/0 only when /3/0/3
        does not report the target. When it does, the engine calls the device Current
        from /3/0/3 alone and /5/0 would decide nothing: that is one request less on
        every update's last step (a lost one costs a retransmission timeout on the
        rollout's tail). The report's /5/0/3 and /5/0/5 from before the reboot are then
        stale (and its delivery method may have changed with the firmware), so they are
        set unknown, and `phases.start` reads them before an attempt acts on them."""
        values = await self._read_instance(device, READS[0])
        if version_in(values) == action.version:
            self._reports.merge(device.device_id, device.endpoint, values, self._clock(),
                                unknown=UNKNOWN_AFTER_UPDATE)
            return
        values.update(await self._read_instance(device, READS[1]))
        self._reports.merge(device.device_id, device.endpoint, values, self._clock())

    async def _read_instance(self, device: Device, instance: Path) -> dict[Path, object]:
        """One instance of READS; its resources one by one if the device refuses it."""
        client = self._server.client(device.endpoint)
        try:
            return dict(await client.read(instance, timeout=self._settings.request_timeout))
        except DeviceRequestFailed:
            return await self._read_each(device, instance)

    async def _probe(self, device: Device) -> None:
        """Read what tells how an install went. Silence is expected while the device
        restarts: what was read is kept, the engine asks again later."""
        client = self._server.client(device.endpoint)
        values: dict[Path, object] = {}
        for path in PROBES:
            try:
                values.update(await client.read(path, timeout=self._settings.request_timeout))
            except DeviceRequestFailed:
                continue  # this resource refused; the others still tell
            except (TemporaryError, WaitingError) as exc:
                log.info("%s: no answer to a probe (%s); expected while it restarts",
                         device.device_id, type(exc).__name__)
                break
        if values:
            self._reports.merge(device.device_id, device.endpoint, values, self._clock())

    async def _read_each(self, device: Device, instance: Path) -> dict[Path, object]:
        client = self._server.client(device.endpoint)
        values: dict[Path, object] = {}
        for path in FALLBACK_READS:
            if path.object_id == instance.object_id:
                values.update(await client.read(path, timeout=self._settings.request_timeout))
        return values

    async def _observe(self, device: Device, action: act.Observe) -> None:
        reg = self._server.registration(device.endpoint)
        if reg is None:
            return
        whole = await self._watches.start(
            self._server.client(device.endpoint), reg, action.paths,
            lambda values: self._on_notify(device, values), self._settings.request_timeout)
        if action.read and not whole:  # the answers did not carry all of /5/0
            values = await self._read_instance(device, READS[1])
            self._reports.merge(device.device_id, device.endpoint, values, self._clock())

    async def _write_uri(self, device: Device, action: act.WriteUri) -> None:
        data = await self._images(action.image_id)
        uri = self._server.offer_firmware(device.endpoint, action.image_id, data)
        client = self._server.client(device.endpoint)
        await client.write(FW_PACKAGE_URI, uri, timeout=self._settings.request_timeout)
        log.info("%s: attempt %d: wrote /5/0/1 (%d bytes offered)", device.device_id,
                 action.attempt, len(data))

    async def _push(self, device: Device, action: act.PushPackage) -> None:
        """Start the push and return: it runs as the server's operation, not this
        worker's, and its end comes back as observed state (a delivery or a stop)."""
        data = await self._images(action.image_id)
        self._server.client(device.endpoint).start_push(
            data, timeout=action.timeout, package=action.image_id, resume=action.resume,
            digest=action.digest)
        log.info("%s: attempt %d: %s %d bytes to /5/0/0", device.device_id, action.attempt,
                 "resuming the push of" if action.resume else "pushing", len(data))

    async def _execute(self, device: Device) -> None:
        client = self._server.client(device.endpoint)
        try:
            await client.execute(FW_UPDATE, timeout=self._settings.execute_timeout)
        except (TemporaryError, WaitingError) as exc:
            # Devices often reboot before they answer: not a failure. Only the version
            # the device reports when it comes back decides the outcome.
            log.info("%s: no answer to Execute (%s); expected while it restarts",
                     device.device_id, type(exc).__name__)

    async def _cancel(self, device: Device) -> None:
        client = self._server.client(device.endpoint)
        await client.write(FW_PACKAGE_URI, "", timeout=self._settings.request_timeout)
        self._server.revoke_firmware(device.endpoint)
