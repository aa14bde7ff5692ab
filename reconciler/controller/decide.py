"""The synchronous half of a reconcile: read desired and observed state, diff, gate,
decide, and persist the decision's progress and events before the controller acts on it.

Everything here runs without an await, so on the one event loop a decision and the
rollout index update it causes are atomic: two devices can never take the last
`maxConcurrent` slot together. Called by `Controller`; owns the current `DesiredState`,
the `RolloutIndex` and the per-collection status written to the store.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from reconciler import heap
from reconciler.cluster.node import default_node_id
from reconciler.cluster.ownership import Ownership
from reconciler.cluster.progress_feed import ProgressFeed
from reconciler.cluster.slots import SharedSlots
from reconciler.controller.config import ControllerConfig
from reconciler.controller.held_writes import HeldWrites, RetargetSlice
from reconciler.controller.reports import Reports
from reconciler.controller.rollout import Placement, RolloutIndex, to_release
from reconciler.controller.watches import Watches
from reconciler.controller.window_status import next_window, window_status
from reconciler.engine import OPEN, Decision, decide, diff, retarget
from reconciler.engine.conditions import collection_conditions, device_conditions
from reconciler.engine.waves import wave_of
from reconciler.errors import NoSlot, NotOwner
from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.cluster import Fence, SlotClaim
from reconciler.model.desired import Collection, DesiredState, Device, revision_affects
from reconciler.model.observed import DeviceEvent, DeviceProgress
from reconciler.model.status import Condition, UpdateState
from reconciler.store import Store

T = TypeVar("T")
log = logging.getLogger("reconciler.device")
SLICE_SECONDS = 0.02  # the longest the loop spends applying a revision before it yields
SLICE_DEVICES = 500  # devices retargeted per slice: one worker-thread transaction each
CATCH_UP_SECONDS = 1.0  # retargeting, between two pauses for the store (store.catch_up)
BIG_CHANGE = 10_000  # devices added or removed by a revision after which memory is released


@dataclass(frozen=True, slots=True)
class Step:
    device: Device
    decision: Decision


class Decider:
    def __init__(self, store: Store, reports: Reports, server: Lwm2mServer,
                 watches: Watches, settings: ControllerConfig,
                 clock: Callable[[], float], ownership: Ownership | None = None) -> None:
        self.store, self.server, self.watches, self.clock = store, server, watches, clock
        self.reports = reports
        self.ownership = ownership or Ownership(store, default_node_id())
        # The leader writes a revision's rows; a follower waits for them (cluster).
        self.apply_desired: Callable[[DesiredState], None] = store.apply_desired
        self.slots = SharedSlots()
        self.retargeting = False  # a revision's records are being retargeted (_apply)
        # Several nodes: the other nodes' records, for the guards and the status (serve).
        self.feed: ProgressFeed | None = None
        self.config = settings.engine_config()
        self.desired = DesiredState.empty()
        self.index = RolloutIndex(self._place)
        self.on_slot_free: Callable[[list[str]], None] = lambda _keys: None
        # Devices to look at again: those whose reconcile waited for a slice's write.
        self.requeue: Callable[[list[str]], None] = lambda _keys: None
        # A revision's retarget records commit in a worker thread, their devices held.
        self.retargets = HeldWrites(self._write_retargets, self._released)
        # collection -> wave -> devices held by its gate
        self._gated: dict[str, dict[int, set[str]]] = {}
        self._dirty: set[str] = set()  # collections whose status changed
        self._window_edges: dict[str, float] = {}  # collection -> a window opens/closes
        self._conditions: dict[str, tuple[Condition, ...]] = {}  # device -> to write
        self._loaded = False
        self._errors: dict[str, str] = {}  # device -> its last error noted (deduplicated)
        self._errors_size = heap.Shrinker()
        self._started = clock()  # what began before this is disturbed by our restart
        self._changed = asyncio.Event()
        self._applying = asyncio.Lock()

    async def set_desired(self, desired: DesiredState) -> list[str]:
        """Materialise `desired`; return the devices whose target or policy changed.

        A 200,000-device commit is seconds of work, and the loop must keep answering
        CoAP and HTTP: the store's rows and the list of affected devices are worked out
        in a worker thread (the store takes its writer a short slice at a time), then the
        new snapshot is swapped in and the rollout index updated on the loop, in slices
        of at most `SLICE_SECONDS` each, so slot accounting stays on the loop; each
        slice's retarget records commit in a worker thread (`held_writes`). The
        collector's full passes wait until it is done, and after a big change what is
        alive is frozen out of them (`heap`)."""
        async with self._applying:  # one revision at a time
            with heap.no_full_collections():
                affected, gone = await self._apply(desired)
            big = len(gone) >= BIG_CHANGE or len(affected) >= BIG_CHANGE
            # The ids of the devices that went are their last memory: freed before the
            # trim below, not after it (with glibc's malloc for small objects, the 14 MB
            # of 200,000 ids stayed resident until some later trim).
            del gone
            if big:
                await asyncio.to_thread(self.store.release_memory)  # before settle's trim
                await heap.settle()
        return affected

    async def _apply(self, desired: DesiredState) -> tuple[list[str], list[str]]:
        """`set_desired`'s work; (devices affected, devices gone)."""
        took = _Phases()
        known, affected, gone = await asyncio.to_thread(self._materialise, self.desired, desired)
        old, self.desired = [self.desired], desired
        # Until every record is retargeted the index still counts the old target's (an
        # emptied wave would pass its gate): reconciles wait for it (`retargeting`).
        self.retargeting = True
        try:
            return await self._retarget(desired, old, known, affected, gone, took)
        finally:
            self.retargeting = False

    async def _retarget(self, desired: DesiredState, old: list[DesiredState],
                        known: list[tuple[str, DeviceProgress]], affected: list[str],
                        gone: list[str], took: _Phases) -> tuple[list[str], list[str]]:
        took.done("store")
        await _in_slices(gone, self._forget)
        # their offers end with them
        await _in_slices(gone, lambda d: self.server.revoke_firmware(
            old[0].devices[d].endpoint))
        took.done("forget")
        # The old snapshot's last reference goes to a worker thread: freeing 200,000
        # devices is a pause of its own.
        await asyncio.to_thread(_dismantle, old)
        took.done("dismantle")
        await _in_slices(known, lambda item: self.index.put(*item))
        if not known:  # a revision may move records between waves or off their target
            await _in_slices(affected, self.index.replace)
        took.done("index")
        self._dirty.update(desired.collections)
        await self._acknowledge(affected)
        took.done("retarget")
        self._changed.set()  # waiters may wait for the revision itself
        if len(affected) >= BIG_CHANGE or len(gone) >= BIG_CHANGE:
            log.info("revision %s: %d devices affected, %d gone; %s", desired.revision[:12],
                     len(affected), len(gone), took)
        return affected, gone

    def _forget(self, device_id: str) -> None:
        """A device left the desired state: nothing of it stays in memory."""
        self.index.remove(device_id)
        self.reports.forget(device_id)
        if self._errors.pop(device_id, None) is not None:
            self._errors_size.removed(self._errors)

    def _materialise(self, old: DesiredState, desired: DesiredState) -> tuple[
            list[tuple[str, DeviceProgress]], list[str], list[str]]:
        """In a worker thread: write the snapshot to the store and work out (progress
        records to load into the index, devices affected, devices gone). Reads only the
        two snapshots and the store, never the loop's state."""
        self.apply_desired(desired)
        if self._loaded:
            gone = [d for d in old.devices if d not in desired.devices]
            return [], [d for d in desired.devices if revision_affects(old, desired, d)], gone
        self._loaded = True
        if self.feed is not None:
            self.feed.begin()  # before the load: no other node's change falls between
        known = [(desired.devices[p.device_id].collection_id, p)
                 for p in self.store.all_progress() if p.device_id in desired.devices]
        return known, list(desired.devices), []

    async def _acknowledge(self, affected: list[str]) -> None:
        """Record every affected device's new target before the queue works through them,
        so the API shows a revision's effect as soon as it is applied. A slice at a time:
        decided on the loop (at most `SLICE_SECONDS`), committed in a worker thread while
        its devices are held (`held_writes`); a crash between slices only leaves work
        that the level-triggered reconcile does anyway."""
        started, count, took = self.clock(), 0, _Phases()
        self._write_conditions()  # older ones must not land after this revision's
        pending, caught_up = collections.deque(affected), time.monotonic()
        while (batch := self._acknowledge_slice(pending, started)) is not None:
            count += len(batch.records)
            took.done("deciding")
            if batch.records:
                await self.retargets.land(batch)
            else:
                await asyncio.sleep(0)
            took.done("writing")
            if time.monotonic() - caught_up < CATCH_UP_SECONDS:
                continue
            # A pause in our stream of writes, off the loop, for the store to catch up:
            # without one SQLite's WAL grows for as long as the stream lasts (1.1 GB).
            await asyncio.to_thread(self.store.catch_up)
            caught_up = time.monotonic()
            took.done("store catching up")
        if count:
            self._changed.set()
            log.info("revision %s: %d devices retargeted in %.2fs (%s)",
                     self.desired.revision[:12], count, self.clock() - started, took)

    def _acknowledge_slice(self, pending: collections.deque[str],
                           now: float) -> RetargetSlice | None:
        """Retarget devices taken from `pending` for up to `SLICE_SECONDS` (at most
        `SLICE_DEVICES`); what to write for them, or None once `pending` is empty. Their
        reports come in one query (`Reports.get_many`), not one per device."""
        revision, batch = self.desired.revision, RetargetSlice()
        shared: dict[tuple[str, str], tuple[Condition, ...]] = {}  # most devices say the same
        until, seen = time.monotonic() + SLICE_SECONDS, 0
        reports = self.reports.get_many(list(itertools.islice(pending, SLICE_DEVICES)))
        while pending:
            device_id = pending.popleft()
            seen += 1
            device = self.desired.devices[device_id]
            before = self.index.get(device_id)
            delta = diff(self.desired, device_id, reports.get(device_id),
                         self.server.registration(device.endpoint))
            acknowledged = retarget(delta, before, now, self.config)
            after = acknowledged.progress
            if after is not None and after is not before:
                if _offer_ends(before, after) and not self._offers(device.endpoint, after):
                    self.server.revoke_firmware(device.endpoint)
                batch.records.append((after, acknowledged.events))
                key = (after.state.value, after.message)
                if key not in shared:
                    shared[key] = device_conditions(after, revision, now)
                batch.conditions.append((device_id, shared[key]))
                self._conditions.pop(device_id, None)  # older: must not land after these
                self.index.put(device.collection_id, after)
                log.debug("%s (%s): %s", device_id, device.endpoint, after.message)
            if seen >= SLICE_DEVICES or time.monotonic() >= until:
                break
        return batch if seen else None

    def _write_retargets(self, batch: RetargetSlice) -> None:
        """In a worker thread: one slice's records and conditions. Each node retargets
        its own devices (and those nobody owns): another node's record (and conditions)
        of a device it is updating is never overwritten from a stale view here."""
        self.store.put_progress_many(batch.records, node=self.ownership.node)
        self.store.put_conditions_many(batch.conditions, node=self.ownership.node)

    def _released(self, deferred: list[str], reload: list[str]) -> None:
        """A slice has committed: the reconciles it deferred run now (a Register from
        another node re-reads the device's record first, as `reload` would have)."""
        for device_id in reload:
            self.reload(device_id)
        self.requeue(deferred)

    def _offers(self, endpoint: str, progress: DeviceProgress) -> bool:
        """A live offer of the record's target stays when the record is retargeted: the
        offer another node handed out for this revision (its leader applies it first),
        filed here for a download the balancer sent here before this node applied it.
        Revoked, it would also be deleted from the shared store under that node."""
        offer = self.server.firmware.offered(endpoint)
        return offer is not None and offer.image_id == progress.target_image_id

    def decide_and_record(self, device_id: str) -> Step | None:
        """The engine's next decision for one device, with its progress, events and
        conditions already written to the store (and the rollout index updated)."""
        device = self.desired.devices.get(device_id)
        if device is None:
            return None
        if self.retargets.holds(device_id):  # its retarget record is being written
            self.retargets.defer(device_id)
            return None
        reg = self.server.registration(device.endpoint)
        delta = diff(
            self.desired, device_id, self.reports.get(device_id), reg,
            awake=reg is not None and self.server.is_awake(device.endpoint),
            observing=reg is not None and self.watches.observing(reg),
            can_observe=reg is None or self.watches.can_observe(reg),
            server_started=self._started,
            delivered_at=self.server.deliveries.at(device.endpoint),
            pushing=self.server.pushes.running(device.endpoint),
            push_stop=self.server.pushes.stop(device.endpoint),
        )
        collection = self.desired.collections.get(device.collection_id)
        now, wave, gate = self.clock(), 0, OPEN
        if collection is not None:
            target = delta.target.image_id if delta.target else None
            wave = _wave(collection, device, target)
            gate = self.index.gate(collection, now, wave, target)
        before = self.index.get(device_id)
        result = decide(delta, before, now, gate, self.config)
        claim = self.slots.claim(collection, before, result.progress)
        fence = self.ownership.fence(device.endpoint, registered=reg is not None)
        try:
            self._record(device, before, result, fence, claim)
        except NotOwner:
            self.ownership.lost(device.endpoint)  # a Register at another node: not ours
            # Its record leaves this node's counts (the new owner's write counts it in
            # the store): an update it had in flight here must not hold a slot forever.
            if before is not None and before.state.in_flight:
                self.reload(device_id)  # the new owner's record, if it wrote one
                self._release(device.collection_id)
            self._changed.set()  # waiters may wait for that too
            return None
        except NoSlot as exc:  # every slot is taken, counting the other nodes' devices
            gate = self.slots.full(device.collection_id, str(exc))
            result = decide(delta, before, now, gate, self.config)
            self._record(device, before, result, fence)
        if result.gated:
            held = self._gated.setdefault(device.collection_id, {})
            held.setdefault(wave, set()).add(device_id)
        return Step(device, result)

    def reload(self, device_id: str) -> None:
        """The device's record and report as the store has them: after a Register moved
        it here from another node, which may have written both since this node last
        did (a download it started, an Execute it recorded)."""
        device = self.desired.devices.get(device_id)
        if device is None:
            return
        if self.retargets.holds(device_id):  # the store has not got our record yet
            self.retargets.defer(device_id, reload=True)
            return
        self.reports.forget(device_id)
        self.reloaded(device_id, self.store.progress(device_id))

    def reloaded(self, device_id: str, progress: DeviceProgress | None) -> bool:
        """`reload` with the record already read (a batch of them: `controller.reloads`,
        which then primes the report); False if a retarget holds the device, which
        reloads it itself once its slice has landed, or if a revision removed the device
        meanwhile (its report is not cached: the cache holds desired devices only)."""
        device = self.desired.devices.get(device_id)
        if device is None:
            return False
        if self.retargets.holds(device_id):
            self.retargets.defer(device_id, reload=True)
            return False
        if progress is not None:
            self.index.put(device.collection_id, progress)
        else:
            self.index.remove(device_id)
        return True

    def _place(self, progress: DeviceProgress) -> Placement:
        """The record's wave, and whether it is about its device's present target (for
        the rollout index: only such records count toward a halt or a wave's gate)."""
        device = self.desired.devices.get(progress.device_id)
        target = self.desired.effective_target(device) if device else None
        if device is None or target is None or target != progress.target_image_id:
            return 0, False
        collection = self.desired.collections.get(device.collection_id)
        return (_wave(collection, device, target) if collection else 0), True

    def _record(self, device: Device, before: DeviceProgress | None, result: Decision,
                fence: Fence | None = None, claim: SlotClaim | None = None) -> None:
        after = result.progress
        if after is None or (after == before and not result.events):
            return
        # Persisted before any action of this decision runs; synced to disk when the engine
        # says so (before an Execute: a lost record could mean a second one). Fenced: only
        # while this node still owns the device; a start takes its slot in the same write.
        self.store.put_progress(after, result.events, durable=result.durable, fence=fence,
                                slot=claim)
        self.index.put(device.collection_id, after)
        if before is None or (before.state, before.message) != (after.state, after.message):
            conditions = device_conditions(after, self.desired.revision, self.clock())
            self._put_conditions(device.device_id, conditions)
            self._dirty.add(device.collection_id)
        self._changed.set()  # after the conditions' write is scheduled: waiters see them
        for event in result.events:
            log.info("%s (%s): %s", device.device_id, device.endpoint, event.message)
        if before is not None and _may_free(before, after):
            self._release(device.collection_id)
        if _offer_ends(before, after):
            self.server.revoke_firmware(device.endpoint)

    def _put_conditions(self, device_id: str, conditions: tuple[Condition, ...]) -> None:
        """Conditions are for the API, not a guarantee: all that change in one pass of
        the event loop are written in one transaction right after it (profiled: a
        commit per state change was a tenth of the server's time)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.store.put_conditions(device_id, conditions)
            return
        if not self._conditions:
            loop.call_soon(self._write_conditions)
        self._conditions[device_id] = conditions

    def _write_conditions(self) -> None:
        pending, self._conditions = self._conditions, {}
        if pending:
            self.store.put_conditions_many(list(pending.items()))

    def _release(self, collection_id: str) -> None:
        """A slot freed or a wave may have finished: wake as many gate-held devices of
        the waves that may start as there are free slots (the soaking wave's next all at
        once, to learn when the soak ends), or all of them when the rollout is now halted
        or paused, so each one says why it waits."""
        held = self._gated.get(collection_id)
        collection = self.desired.collections.get(collection_id)
        if not held or collection is None:
            return
        now = self.clock()
        keys = to_release(held, self.index.gate(collection, now),
                          self.index.position(collection, now),
                          collection.rollout.max_concurrent,
                          self.index.stats(collection_id).in_flight)
        self.on_slot_free(keys)

    def note_error(self, device: Device, message: str) -> None:
        """An action's error, into the device's history unless it repeats the last one: a
        device that never answers would otherwise add a row every backoff, forever."""
        if self._errors.get(device.device_id) == message:
            return
        self._errors[device.device_id] = message
        self._errors_size.added(self._errors)
        self.note(device, "error", message)

    def clear_error(self, device_id: str) -> None:
        """The device's reconcile settled: the next error is news again."""
        if self._errors.pop(device_id, None) is not None:
            self._errors_size.removed(self._errors)

    def note(self, device: Device, kind: str, message: str) -> None:
        """Append one line to the device's history (an error of an action, say)."""
        progress = self.index.get(device.device_id)
        if progress is None:
            return
        event = DeviceEvent(device.device_id, self.clock(), kind, message,
                            self.desired.revision)
        self.store.put_progress(progress, (event,))

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> None:
        """Return once `predicate()` holds, checked after every progress change (tests,
        the demo and benchmarks await this instead of sleeping)."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def follow_others(self) -> None:
        """Every second on a shared store: what the other nodes recorded since the last
        look goes into the rollout index, so maxConcurrent, the waves and the failure
        threshold count every node's devices and the status written is the fleet's; the
        collections that changed release their held devices (a slot freed elsewhere, a
        wave finished, a halt each held device must state)."""
        if self.feed is None or not self._loaded:
            return
        records = await asyncio.to_thread(self.feed.read, list(self.desired.collections))
        touched: set[str] = set()
        for record in records:
            device = self.desired.devices.get(record.device_id)
            # A device this node owns is written by this node alone (fenced): its index
            # record is the newest, and a read that overtook a write here is not.
            held = self.index.get(record.device_id)
            if device is None or self.ownership.owns(device.endpoint) or held == record:
                continue
            # A record of an older target than the one this node applied (its owner has
            # not retargeted yet; its retarget follows) would take the device out of its
            # wave here, and an emptied wave passes its gate.
            if held is not None and self._place(held)[1] and not self._place(record)[1]:
                continue
            self.index.put(device.collection_id, record)
            touched.add(device.collection_id)
        for collection_id in sorted(touched):
            self._dirty.add(collection_id)
            self._release(collection_id)

    def retry_slots(self) -> None:
        """Every second: collections whose devices wait for a slot other nodes held
        try as many as their local count leaves free (a slot freed on another node
        wakes nobody here)."""
        for collection_id in self.slots.waiting():
            self._release(collection_id)  # a device refused again is held again
            self.slots.retried(collection_id, bool(self._gated.get(collection_id)))

    def flush_status(self) -> None:
        """Write the rollout status and conditions of every collection that changed."""
        self._write_conditions()
        now = self.clock()
        # A window's opening or closing changes the status without any device changing.
        self._dirty.update(c for c, edge in self._window_edges.items() if now >= edge)
        dirty, self._dirty = self._dirty, set()
        revision = self.desired.revision
        for collection_id in sorted(dirty):
            collection = self.desired.collections.get(collection_id)
            self._window_edges.pop(collection_id, None)
            if collection is None:
                continue
            status = self.index.status(collection, revision, now)
            status["driftPolicy"] = collection.drift_policy.value
            if collection.rollout.windows:
                shown, edge = window_status(collection.rollout.windows, now)
                status.update(windows=shown, nextWindow=next_window(shown))
                if edge is not None:
                    self._window_edges[collection_id] = edge
            # Other nodes write it too: the feed's position orders the writes.
            stamp = None if self.feed is None else self.feed.position(collection_id)
            self.store.put_collection_status(collection_id, status, stamp=stamp, at=now)
            position = self.index.position(collection, now)
            if position is not None and position.until is not None:  # a soak's end, too
                edge = self._window_edges.get(collection_id, position.until)
                self._window_edges[collection_id] = min(edge, position.until)
            counts = self.index.counts(collection_id)
            conditions = collection_conditions(counts, self.index.gate(collection, now),
                                               revision, now)
            self.store.put_conditions(collection_id, conditions)


class _Phases:
    """How long each step of applying a big revision took, in all (a log line, for
    operators and bench/big_commit.py)."""

    def __init__(self) -> None:
        self._last = time.monotonic()
        self._took: dict[str, float] = {}

    def done(self, phase: str) -> None:
        now = time.monotonic()
        self._took[phase] = self._took.get(phase, 0.0) + now - self._last
        self._last = now

    def __str__(self) -> str:
        return ", ".join(f"{phase} {took:.2f}s" for phase, took in self._took.items())


def _dismantle(snapshots: list[DesiredState]) -> None:
    """Free the snapshots in `snapshots` (their last references) without one long pause:
    their dictionaries go at once while a list still holds the devices, then the devices
    go a slice at a time (`heap.dismantle`)."""
    devices = [device for snapshot in snapshots for device in snapshot.devices.values()]
    snapshots.clear()
    heap.dismantle(devices)


async def _in_slices(items: list[T], work: Callable[[T], object]) -> None:
    """`work(item)` for every item, yielding the loop every `SLICE_SECONDS`."""
    until = time.monotonic() + SLICE_SECONDS
    for item in items:
        work(item)
        if time.monotonic() >= until:
            await asyncio.sleep(0)
            until = time.monotonic() + SLICE_SECONDS


def _wave(collection: Collection, device: Device, target: str | None) -> int:
    waves = collection.rollout.waves
    if not waves or target is None:
        return 0
    return wave_of(waves, device.device_id, target, device.tags)


def _may_free(before: DeviceProgress, after: DeviceProgress) -> bool:
    """The update left flight (a slot freed), or a record became Current or failed
    without one (a TimedOut device back on its target): either may finish a wave."""
    if before.state is after.state:
        return False
    return before.state.in_flight or after.state is UpdateState.CURRENT or after.state.terminal


def _offer_ends(before: DeviceProgress | None, after: DeviceProgress) -> bool:
    """A firmware offer lives while its update is in flight for one target: it is revoked
    (its URI answers 4.04) when the update ends in any way or the target changes."""
    return before is not None and (before.target_image_id != after.target_image_id
                                   or (before.state.in_flight and not after.state.in_flight))
