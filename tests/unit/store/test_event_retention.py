"""The event log stays bounded (age, count) without losing a device's newest events, in
slices, on a real SQLite file; readers learn where the complete feed starts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from reconciler.api import status
from reconciler.api.ui import pages
from reconciler.model.observed import DeviceEvent, DeviceProgress
from reconciler.model.status import UpdateState
from reconciler.store import EventRetention, SqliteStore, open_reader
from reconciler.store.retention import DEVICE_TAIL, keep_bounded

DAY = 86400.0
NOW = 100 * DAY


def _log(store: SqliteStore, device_id: str, n: int, at: float) -> list[int]:
    """n events of the device at time `at`; returns their ids."""
    before = store.last_event_seq()
    events = [DeviceEvent(device_id, at, "state", f"{device_id} #{i}", "r1") for i in range(n)]
    store.put_progress(DeviceProgress(device_id, None, UpdateState.PENDING), events)
    return [e.seq for e in store.events_after(before, device=device_id, limit=1000)]


def _ids(store: SqliteStore, device: str | None = None) -> list[int]:
    seqs: list[int] = []
    while page := store.events_after(seqs[-1] if seqs else 0, device=device, limit=1000):
        seqs += [e.seq for e in page]
    return seqs


def test_the_device_tail_covers_what_the_device_views_show() -> None:
    assert max(status.EVENT_LIMIT, pages.EVENT_LIMIT) <= DEVICE_TAIL


def test_old_events_go_but_each_desired_device_keeps_its_newest(
        store: SqliteStore, state: Path | str, fleet: Any) -> None:
    store.apply_desired(fleet.snapshot(2))
    old0 = _log(store, "dev0000", DEVICE_TAIL + 30, at=NOW - 40 * DAY)
    old1 = _log(store, "dev0001", 5, at=NOW - 40 * DAY)
    gone = _log(store, "gone0000", 3, at=NOW - 40 * DAY)  # not in the desired state
    fresh = _log(store, "dev0001", 4, at=NOW - DAY)
    done = store.prune_events(EventRetention(max_age=30 * DAY), NOW)
    assert done.deleted == 30 + len(gone)
    assert _ids(store, "dev0000") == old0[30:]  # its newest DEVICE_TAIL
    assert _ids(store, "dev0001") == old1 + fresh
    assert _ids(store, "gone0000") == []
    assert done.through == gone[-1]  # every event after it is still there
    reader = open_reader(state)
    assert reader.events_pruned_through() == store.events_pruned_through() == done.through
    reader.close()


def test_the_count_bound_keeps_the_newest_events_whatever_their_age(
        store: SqliteStore, fleet: Any) -> None:
    store.apply_desired(fleet.snapshot(1))
    seqs = _log(store, "gone0000", 50, at=NOW)
    done = store.prune_events(EventRetention(max_count=20), NOW)
    assert done.deleted == 30 and _ids(store) == seqs[30:]
    assert done.through == seqs[29]
    assert store.prune_events(EventRetention(max_count=20), NOW).deleted == 0  # idempotent


def test_pruning_in_small_slices_deletes_the_same_in_many_short_transactions(
        store: SqliteStore, fleet: Any) -> None:
    store.apply_desired(fleet.snapshot(2))
    _log(store, "dev0000", DEVICE_TAIL + 40, at=NOW - 40 * DAY)
    _log(store, "gone0000", 60, at=NOW - 40 * DAY)
    kept = _log(store, "dev0001", 10, at=NOW)
    transactions: list[float] = []
    store.on_write = transactions.append
    done = store.prune_events(EventRetention(max_age=30 * DAY, slice=16), NOW)
    assert done.deleted == 100
    assert len(_ids(store)) == DEVICE_TAIL + len(kept)
    # (100 + DEVICE_TAIL) due rows at 16 a slice, plus the trim and sweep passes
    assert len(transactions) >= (100 + DEVICE_TAIL) // 16


def test_a_tail_left_below_the_floor_is_trimmed_when_the_device_gets_newer_events(
        store: SqliteStore, fleet: Any) -> None:
    store.apply_desired(fleet.snapshot(1))
    old = _log(store, "dev0000", DEVICE_TAIL, at=NOW - 40 * DAY)
    retention = EventRetention(max_age=30 * DAY)
    assert store.prune_events(retention, NOW).deleted == 0  # all of it is the tail
    new = _log(store, "dev0000", 25, at=NOW)
    assert store.prune_events(retention, NOW).deleted == 25
    assert _ids(store, "dev0000") == old[25:] + new


def test_a_device_that_leaves_the_desired_state_loses_its_kept_tail(
        store: SqliteStore, fleet: Any) -> None:
    store.apply_desired(fleet.snapshot(2))
    _log(store, "dev0001", 10, at=NOW - 40 * DAY)
    kept = _log(store, "dev0000", 3, at=NOW)
    retention = EventRetention(max_age=30 * DAY)
    assert store.prune_events(retention, NOW).deleted == 0
    store.apply_desired(fleet.snapshot(1, revision="r2"))  # dev0001 is gone from git
    assert store.prune_events(retention, NOW).deleted == 10
    assert _ids(store) == kept


def test_a_call_stops_after_its_slices_and_the_next_goes_on_where_it_stopped(
        store: SqliteStore, fleet: Any) -> None:
    store.apply_desired(fleet.snapshot(1))
    seqs = _log(store, "gone0000", 100, at=NOW - 40 * DAY)
    retention = EventRetention(max_age=30 * DAY, slice=10, slices=3)
    first = store.prune_events(retention, NOW)
    assert (first.deleted, first.through, first.more) == (30, seqs[29], True)
    calls = 1
    while store.prune_events(retention, NOW).more:
        calls += 1
    assert _ids(store) == [] and calls >= 100 // 30


async def test_the_retention_task_prunes_until_stopped(
        store: SqliteStore, fleet: Any) -> None:
    store.apply_desired(fleet.snapshot(1))
    _log(store, "gone0000", 50, at=NOW - 40 * DAY)
    stop = asyncio.Event()
    retention = EventRetention(max_age=30 * DAY, slice=10, slices=2)
    task = asyncio.create_task(keep_bounded(store, retention, 0.01, stop, lambda: NOW))
    async with asyncio.timeout(5):
        while _ids(store):  # the task prunes in a thread and signals nothing to await
            await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert _ids(store) == []
