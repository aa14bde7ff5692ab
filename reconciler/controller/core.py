"""`Controller`: level-triggered reconciliation of every device towards its target.

Triggers (a new desired revision, Register/Update/De-register, Observe notifications, a
periodic resync) only enqueue device ids on the `WorkQueue`. `reconcile_device(id)`
re-reads desired and observed state, asks the pure engine for a decision, persists its
progress and events *before* any effect, then hands the actions to the executor, and
loops until the decision only waits. Built and run by `reconciler.serve.service`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from reconciler.cluster.lease import NodeLease
from reconciler.cluster.node import default_node_id
from reconciler.cluster.ownership import Ownership
from reconciler.controller.config import ControllerConfig
from reconciler.controller.decide import Decider, Step
from reconciler.controller.executor import Executor
from reconciler.controller.push_log import PushLog
from reconciler.controller.reloads import Reloads
from reconciler.controller.reports import Reports
from reconciler.controller.restore import RestartRecords, Restored
from reconciler.controller.watches import Watches
from reconciler.controller.workqueue import Requeue, WorkQueue
from reconciler.errors import NotOwner, WaitingError
from reconciler.lwm2m.codecs import Value
from reconciler.lwm2m.logbudget import LogBudget, guard
from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.desired import DesiredState, Device
from reconciler.model.lwm2m import Path, RegistrationEvent, RegistrationEventKind
from reconciler.observe import logcontext
from reconciler.store import Store

log = logging.getLogger("reconciler.controller")

MAX_STEPS = 12  # decide -> act rounds per reconcile before yielding the worker
# After the step cap: come back later, not now, so a device that keeps asking for more
# work gets a bounded rate of requests instead of a hot loop.
STEP_CAP_DELAY = 1.0
# A decision that waits until an instant already past is looked at again after this.
MIN_REQUEUE = 0.05
RETARGET_WAIT = 0.2  # a reconcile during a revision's retarget looks again after this
ENQUEUE_SLICE = 5_000  # keys enqueued per pass of the event loop
# The loggers of reconciler/controller/: what a device does wrong reaches them, so their
# warnings are rate-limited like the LwM2M layer's (LogBudget, from WARNING up).
LOGGERS = ("reconciler.controller", "reconciler.device", "reconciler.executor",
           "reconciler.queue", "reconciler.restore")


class Controller:
    def __init__(self, store: Store, server: Lwm2mServer,
                 images: Callable[[str], Awaitable[bytes]], settings: ControllerConfig,
                 clock: Callable[[], float] = time.time, *,
                 ownership: Ownership | None = None, lease: NodeLease | None = None) -> None:
        self.store, self.server, self.settings, self.clock = store, server, settings, clock
        # Several nodes on one store (reconciler.cluster): alone, this node owns every
        # device it registers and its lease is never lost.
        self.ownership = ownership or Ownership(store, default_node_id())
        self.lease = lease
        self.watches = Watches()
        self.reports = Reports(store)
        # A report about a device another node took over is refused, not written over
        # the new owner's (a soft fence: it lands while no node has the device registered).
        self.reports.fence = lambda endpoint: self.ownership.fence(endpoint, registered=False)
        self.decider = Decider(store, self.reports, server, self.watches, settings, clock,
                               self.ownership)
        self.executor = Executor(server, self.reports, self.watches, images, settings,
                                 self._on_notify, clock)
        self.on_reconcile: Callable[[float], None] | None = None  # /metrics: seconds each
        self.queue = WorkQueue(self._timed_reconcile, workers=settings.workers,
                               backoff=settings.error_backoff,
                               backoff_max=settings.error_backoff_max, clock=clock)
        # Devices a Register moved here: their records read back in batches.
        self.reloads = Reloads(store, self.decider, self.reports, self.queue.add_all)
        self.decider.on_slot_free = self.queue.add_all
        self.decider.requeue = self.queue.add_all
        if lease is not None:
            lease.on_regained = self.queue.add_all
        server.subscribe_send(self.on_send)  # for the server's life, as the controller's
        # a package delivered: the device should say Downloaded; look (engine: when)
        server.deliveries.subscribe(self._on_delivered)
        server.pushes.subscribe(self._on_delivered)  # a push ended: delivered or stopped
        self.restart = RestartRecords(store, server)
        self.push_log = PushLog(store)  # how far pushes came, for a restart
        server.pushes.log = self.push_log
        server.subscribe_offers(self.restart.on_offer)  # recorded before a URI goes out
        server.subscribe_offer_expiry(self.restart.on_offers_expired)  # batched, flushed
        server.subscribe_formats(self.restart.on_format)  # every second by _resync
        self._images = images
        self._tasks: set[asyncio.Task[None]] = set()
        self.log_budget = LogBudget(level=logging.WARNING)

    @property
    def desired(self) -> DesiredState:
        return self.decider.desired

    async def set_desired(self, desired: DesiredState) -> None:
        """Apply a new good revision: materialise it, then enqueue the devices it affects."""
        affected = await self.decider.set_desired(desired)
        log.info("revision %s applied: %d devices to look at", desired.revision[:12],
                 len(affected))
        await self._enqueue(affected)

    async def _enqueue(self, device_ids: list[str]) -> None:
        """Bulk work (a revision's devices, a resync) behind whatever a device triggers,
        a slice at a time: 200,000 adds in one go would hold the loop for 0.3 s."""
        for first in range(0, len(device_ids), ENQUEUE_SLICE):
            self.queue.add_background(device_ids[first:first + ENQUEUE_SLICE])
            await asyncio.sleep(0)

    async def restore_offers(self) -> int:
        """After a restart, before the CoAP server listens: the package URIs of the last
        run's running downloads serve again. Call once the first revision is applied."""
        return await self.restart.restore_offers(self.desired, self._images, self.clock())

    def restore(self) -> Restored:
        """After a restart, once the CoAP server runs and before `run`: the live
        registrations of the last run come back and their devices are looked at at once."""
        self.ownership.adopt(self.clock())
        restored = self.restart.restore_registrations(self.desired, self.clock(),
                                                      self.ownership.owns)
        self.push_log.restore(self.server, self.desired, self.ownership.owns)
        devices = (self.desired.device_by_endpoint(ep) for ep in restored.endpoints)
        self.queue.add_all([d.device_id for d in devices if d is not None])
        return restored

    def on_registration(self, event: RegistrationEvent) -> None:
        reg = event.registration
        device = self.desired.device_by_endpoint(reg.endpoint)
        if device is None:
            return
        if event.kind in (RegistrationEventKind.DEREGISTERED, RegistrationEventKind.EXPIRED):
            self.ownership.gone(reg.endpoint)
            if self.decider.feed is not None:  # what another node wrote since it moved
                self.decider.reload(device.device_id)
        elif event.kind is RegistrationEventKind.REGISTERED:
            if self.ownership.registered(reg, self.server.formats(reg.endpoint)):
                self.reloads.add(device.device_id)  # another node's record, maybe
        else:
            self.ownership.updated(reg, self.server.formats(reg.endpoint))
        if event.kind is not RegistrationEventKind.UPDATED:
            log.info("%s (%s): %s from %s:%d", device.device_id, reg.endpoint,
                     event.kind.value, reg.host, reg.port,
                     extra={"device": device.device_id, "endpoint": reg.endpoint,
                            "collection": device.collection_id})
            # Observations of an earlier registration died with it (a reboot, a new port).
            keep = reg if event.kind is RegistrationEventKind.REGISTERED else None
            self._spawn(self.watches.drop_stale(reg.endpoint, keep))
        if not self.reloads.holds(device.device_id):  # else its batch wakes it
            self.queue.add(device.device_id)

    def on_send(self, endpoint: str, values: dict[Path, Value]) -> None:
        """A Send (LwM2M 1.1+ `POST /dp`) reports values as a notification does."""
        device = self.desired.device_by_endpoint(endpoint)
        if device is not None:
            self._on_notify(device, values)

    def _on_delivered(self, endpoint: str) -> None:
        device = self.desired.device_by_endpoint(endpoint)
        if device is not None:
            self.queue.add(device.device_id)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_notify(self, device: Device, values: dict[Path, Value]) -> None:
        try:
            self.reports.merge(device.device_id, device.endpoint, values, self.clock())
        except NotOwner:  # a notification of an observation another node's Register ended
            self.ownership.lost(device.endpoint)
            return
        self.queue.add(device.device_id)

    async def reconcile_device(self, device_id: str) -> Requeue | None:
        """Drive one device one step further; returns when to look again (None: only on a
        trigger). One call per device at a time, guaranteed by the work queue."""
        for _ in range(MAX_STEPS):
            # Before every step, not only the first: a reconcile that awaited the device
            # (a read, a write) may wake after a new revision's snapshot was swapped in
            # and before its records were retargeted, or after the lease was lost.
            if self.lease is not None and not self.lease.held:
                self.lease.park(device_id)  # looked at again once the store hears us
                return None
            if self.decider.retargeting:  # the rollout index is between two revisions
                return Requeue(RETARGET_WAIT)
            if self.reloads.holds(device_id):  # its records are read: the batch wakes it
                return None
            step = self.decider.decide_and_record(device_id)
            if step is None:
                return None
            if step.decision.settled:
                self.decider.clear_error(device_id)
                return self._requeue_at(step.decision.wake_at)
            try:
                await self._carry_out(step)
            except WaitingError as exc:
                log.info("%s: waiting for the device to speak (%s)", device_id, exc)
                return None
            except NotOwner:  # its report refused: a Register at another node took it
                self.ownership.lost(step.device.endpoint)
                return None
            except Exception as exc:
                # Into the device's history (once per streak of the same error), then to
                # the queue, which retries with backoff.
                self.decider.note_error(step.device, f"{type(exc).__name__}: {exc}")
                raise
        return Requeue(STEP_CAP_DELAY)

    async def _timed_reconcile(self, device_id: str) -> Requeue | None:
        """A reconcile, timed for /metrics, its log lines naming the device (JSON logs)."""
        started = time.perf_counter()
        device = self.desired.devices.get(device_id)
        try:
            with logcontext.bound(device=device_id, revision=self.desired.revision,
                                  endpoint=device.endpoint if device else None,
                                  collection=device.collection_id if device else None):
                return await self.reconcile_device(device_id)
        finally:
            if self.on_reconcile is not None:
                self.on_reconcile(time.perf_counter() - started)

    def _requeue_at(self, wake_at: float | None) -> Requeue | None:
        if wake_at is None:
            return None
        return Requeue(max(wake_at - self.clock(), MIN_REQUEUE))

    async def _carry_out(self, step: Step) -> None:
        for action in step.decision.actions:
            await self.executor.run(step.device, action)

    async def run(self, stop: asyncio.Event) -> None:
        """The work queue, the resync timer, the status flusher and the push positions'
        writer, until `stop`."""
        tasks = [asyncio.create_task(self.queue.run(stop), name="controller-queue"),
                 asyncio.create_task(self._resync(stop), name="controller-resync"),
                 asyncio.create_task(self.push_log.run(stop), name="controller-push-log")]
        unguard = guard(self.log_budget, LOGGERS)
        try:
            await stop.wait()
        finally:
            await self.reloads.close()
            await asyncio.gather(*tasks, *self._tasks, return_exceptions=True)
            await self.watches.close()
            self.decider.flush_status()
            await self.restart.flush()
            self.log_budget.flush(force=True)
            unguard()

    async def _resync(self, stop: asyncio.Event) -> None:
        """Every resync interval, look at every device again (lost triggers are harmless);
        every second, write the collections' rollout status if it changed and the restart
        records noted since (read formats, expired offers)."""
        last_resync = self.clock()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            await self.decider.follow_others()  # several nodes: the others' records
            self.decider.flush_status()
            self.decider.retry_slots()
            await self.restart.flush()
            self.log_budget.flush()
            if self.clock() - last_resync >= self.settings.resync_interval:
                last_resync = self.clock()
                await self._enqueue(list(self.desired.devices))
