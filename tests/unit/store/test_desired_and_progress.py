"""Incremental apply_desired, derived current images, atomic put_progress, conditions."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from reconciler.controller.rollout import RolloutIndex
from reconciler.model.desired import Management, RolloutPolicy
from reconciler.model.observed import DeviceEvent, DeviceProgress, DeviceReport
from reconciler.model.status import Condition, ConditionType, UpdateState
from reconciler.store import SqliteStore, open_reader, open_store
from reconciler.store.desired_sync import diff_rows

# A NULL where the schema says NOT NULL, as each engine reports it.
INTEGRITY_ERRORS = (sqlite3.IntegrityError, psycopg.errors.IntegrityError)


def _count_device_writes(db_path: Path) -> sqlite3.Connection:
    """Install real triggers that count every row written to `devices`."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.executescript("""
        CREATE TABLE writes (n INTEGER);
        CREATE TRIGGER w1 AFTER UPDATE ON devices BEGIN INSERT INTO writes VALUES (1); END;
        CREATE TRIGGER w2 AFTER INSERT ON devices BEGIN INSERT INTO writes VALUES (1); END;
        CREATE TRIGGER w3 AFTER DELETE ON devices BEGIN INSERT INTO writes VALUES (1); END;
    """)
    return conn


def _writes(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM writes").fetchone()[0])


def test_diff_rows_writes_only_new_or_changed_rows_and_deletes_the_missing() -> None:
    stored = {"a": ("a", 1), "b": ("b", 2), "c": ("c", 3)}
    wanted = {"a": ("a", 1), "b": ("b", 20), "d": ("d", 4)}
    diff = diff_rows(stored, wanted)
    assert sorted(diff.upserts) == [("b", 20), ("d", 4)]
    assert diff.deletes == [("c",)]


def test_one_changed_device_target_rewrites_exactly_one_device_row(
        sqlite_store: SqliteStore, db_path: Path, fleet: Any) -> None:
    store = sqlite_store
    own = {f"dev{i:04d}": fleet.v1 for i in range(2000)}
    store.apply_desired(fleet.snapshot(2000, management=Management.DEVICE, own_targets=own))
    counter = _count_device_writes(db_path)
    store.apply_desired(fleet.snapshot(2000, management=Management.DEVICE, own_targets=own,
                                       revision="r2"))
    assert _writes(counter) == 0
    own["dev0042"] = fleet.v2
    store.apply_desired(fleet.snapshot(2000, management=Management.DEVICE, own_targets=own,
                                       revision="r3"))
    assert _writes(counter) == 1
    assert store.applied_revision() == "r3"
    counter.close()


def test_removed_devices_are_deleted_and_new_ones_inserted(
        store: SqliteStore, state: Path | str, fleet: Any) -> None:
    store.apply_desired(fleet.snapshot(5))
    store.apply_desired(fleet.snapshot(3))
    reader = open_reader(state)
    assert [d.device_id for d in reader.devices(fleet.cid)] == ["dev0000", "dev0001", "dev0002"]
    reader.close()


def test_the_effective_target_follows_the_management_scope(
        store: SqliteStore, state: Path | str, fleet: Any) -> None:
    own = {"dev0000": fleet.v1}
    reader = open_reader(state)
    store.apply_desired(fleet.snapshot(2, own_targets=own))
    assert [d.target_image_id for d in reader.devices(fleet.cid)] == [fleet.v2, fleet.v2]
    store.apply_desired(fleet.snapshot(2, own_targets=own, management=Management.DEVICE))
    assert [d.target_image_id for d in reader.devices(fleet.cid)] == [fleet.v1, None]
    store.apply_desired(fleet.snapshot(2, own_targets=own, management=Management.DISABLED))
    views = reader.devices(fleet.cid)
    assert [(d.target_image_id, d.state) for d in views] == [(None, None), (None, None)]
    reader.close()


def test_the_current_image_is_the_version_reported_trimmed_and_follows_new_images(
        store: SqliteStore, state: Path | str, fleet: Any) -> None:
    reader = open_reader(state)
    store.apply_desired(fleet.snapshot(2))
    store.put_report("dev0000", DeviceReport("ep-0", firmware_version=" 1.0\n"))
    store.put_report("dev0001", DeviceReport("ep-1", firmware_version="3.0"))
    assert [d.current_image_id for d in reader.devices(fleet.cid)] == [fleet.v1, None]
    assert reader.usage(fleet.cid, fleet.v1).current == ["dev0000"]
    # An image with version 3.0 appears in a later commit: dev0001 now runs it.
    later = fleet.snapshot(2)
    images = {**later.images, "17dh0cf43jfhaa": fleet.image("17dh0cf43jfhaa", "3.0")}
    store.apply_desired(type(later)(revision="r2", collections=later.collections,
                                    images=images, devices=later.devices))
    assert reader.usage(fleet.cid, "17dh0cf43jfhaa").current == ["dev0001"]
    assert reader.usage(fleet.cid, fleet.v2).targeted == ["dev0000", "dev0001"]
    reader.close()


def test_the_collection_current_image_is_set_only_when_every_device_reports_it(
        store: SqliteStore, state: Path | str, fleet: Any) -> None:
    reader = open_reader(state)
    store.apply_desired(fleet.snapshot(3))
    for i in range(2):
        store.put_report(f"dev{i:04d}", DeviceReport(f"ep-{i}", firmware_version="2.0"))
    view = reader.collection(fleet.cid)
    assert view is not None and view.current_image_id is None
    store.put_report("dev0002", DeviceReport("ep-2", firmware_version="2.0"))
    view = reader.collection(fleet.cid)
    assert view is not None and view.current_image_id == fleet.v2
    reader.close()


def test_a_failing_event_insert_loses_the_progress_row_too(
        store: SqliteStore, fleet: Any) -> None:
    store.apply_desired(fleet.snapshot(1))
    progress = DeviceProgress("dev0000", fleet.v2, UpdateState.DOWNLOADING, attempts=1)
    good = DeviceEvent("dev0000", 1.0, "state", "Downloading")
    bad = DeviceEvent("dev0000", 2.0, None, "no kind")  # type: ignore[arg-type]
    with pytest.raises(INTEGRITY_ERRORS):
        store.put_progress(progress, [good, bad])
    assert store.progress("dev0000") is None
    store.put_progress(progress, [good])
    assert store.progress("dev0000") == progress


_WRITER = """
import sys
from pathlib import Path
from reconciler.model.observed import DeviceEvent, DeviceProgress
from reconciler.model.status import UpdateState
from reconciler.store import open_store
store = open_store(Path(sys.argv[1]))
n = 0
while True:
    n += 1
    device = f"dev{n % 7}"
    events = [DeviceEvent(device, float(n), "action", f"step {n}.{k}") for k in range(3)]
    store.put_progress(DeviceProgress(device, None, UpdateState.DOWNLOADING, attempts=n), events)
    if n == 200:
        print("ready", flush=True)
"""


def test_kill_9_while_writing_never_leaves_progress_without_its_events(db_path: Path) -> None:
    open_store(db_path).close()
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(db_path)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    store = open_store(db_path)
    reader = open_reader(db_path)
    for p in store.all_progress():
        newest = reader.events(p.device_id, limit=3)
        assert [e.message for e in newest] == [f"step {p.attempts}.{k}" for k in range(3)]
    assert len(store.all_progress()) == 7
    reader.close()
    store.close()


def test_events_are_append_only_and_read_newest_last(
        store: SqliteStore, state: Path | str) -> None:
    for n in range(5):
        store.put_progress(DeviceProgress("dev0000", None, UpdateState.PENDING),
                           [DeviceEvent("dev0000", float(n), "state", f"e{n}")])
    reader = open_reader(state)
    assert [e.message for e in reader.events("dev0000", limit=2)] == ["e3", "e4"]
    assert len(reader.events("dev0000")) == 5
    reader.close()


def test_conditions_of_a_subject_are_replaced_as_a_whole(
        store: SqliteStore, state: Path | str) -> None:
    ready = Condition(ConditionType.READY, False, "Updating", "2/3 current", 5.0, "r1")
    stalled = Condition(ConditionType.STALLED, True, "RetriesExhausted", "gave up", 6.0, "r1")
    store.put_conditions("dev0000", [ready, stalled])
    store.put_conditions("dev0000", [ready])
    reader = open_reader(state)
    assert reader.conditions("dev0000") == [ready]
    reader.close()


def test_progress_for_the_present_target_gives_the_device_state(
        store: SqliteStore, state: Path | str, fleet: Any) -> None:
    store.apply_desired(fleet.snapshot(2))
    store.put_progress(DeviceProgress("dev0000", fleet.v2, UpdateState.UPDATE_FAILED, "flash"))
    store.put_progress(DeviceProgress("dev0001", fleet.v1, UpdateState.UPDATE_FAILED, "old"))
    store.put_collection_status(fleet.cid, {"halted": True, "reason": "2 failures"})
    reader = open_reader(state)
    views = reader.devices(fleet.cid)
    assert [(v.state, v.state_message) for v in views] == [("UpdateFailed", "flash"),
                                                           ("Pending", None)]
    [status] = reader.collection_statuses()
    assert status.counts == {"UpdateFailed": 1, "Pending": 1} and status.devices == 2
    assert status.rollout == {"halted": True, "reason": "2 failures", "failed": 1,
                              "inFlight": 0, "counts": status.counts}
    reader.close()


def test_put_progress_many_lands_every_row_and_event_or_none(
        store: SqliteStore, state: Path | str, fleet: Any) -> None:
    store.apply_desired(fleet.snapshot(3))
    items = [(DeviceProgress(f"dev{i:04d}", fleet.v2, UpdateState.PENDING),
              [DeviceEvent(f"dev{i:04d}", 1.0, "target", "new target")]) for i in range(3)]
    broken = [*items, (DeviceProgress("dev0009", fleet.v2, UpdateState.PENDING),
                       [DeviceEvent("dev0009", 1.0, None, "x")])]  # type: ignore[arg-type]
    with pytest.raises(INTEGRITY_ERRORS):
        store.put_progress_many(broken)
    assert store.all_progress() == []
    store.put_progress_many(items)
    assert [p.device_id for p in store.all_progress()] == ["dev0000", "dev0001", "dev0002"]
    reader = open_reader(state)
    assert [e.message for e in reader.events("dev0001")] == ["new target"]
    reader.close()


def test_put_conditions_many_replaces_each_subjects_conditions(
        store: SqliteStore, state: Path | str) -> None:
    ready = Condition(ConditionType.READY, True, "Current", "runs its target", 1.0, "r1")
    stalled = Condition(ConditionType.STALLED, True, "Failed", "gave up", 2.0, "r1")
    store.put_conditions_many([("dev0000", [ready, stalled]), ("dev0001", [stalled])])
    store.put_conditions_many([("dev0000", [ready])])
    reader = open_reader(state)
    assert reader.conditions("dev0000") == [ready]
    assert reader.conditions("dev0001") == [stalled]
    reader.close()


def test_one_status_shows_the_same_devices_in_its_counts_and_rollout_figures(
        store: SqliteStore, state: Path | str, fleet: Any) -> None:
    """Issue 9.5: device-managed, six failures while the last flushed rollout snapshot
    said one failed and 'waiting for a slot' after the slot was freed."""
    own = {f"dev{i:04d}": fleet.v2 for i in range(6)}
    desired = fleet.snapshot(6, own_targets=own, management=Management.DEVICE)
    store.apply_desired(desired)
    coll = replace(desired.collections[fleet.cid], rollout=RolloutPolicy(max_concurrent=2))
    index = RolloutIndex()
    for i, step in enumerate([UpdateState.UPDATE_FAILED, UpdateState.DOWNLOADING,
                              UpdateState.DOWNLOADING]):
        progress = DeviceProgress(f"dev{i:04d}", fleet.v2, step, "", attempts=1)
        store.put_progress(progress)
        index.put(fleet.cid, progress)
    store.put_collection_status(fleet.cid, index.status(coll, "r1"))
    assert index.status(coll, "r1")["reason"] == "waiting for a slot: 2 of max 2 updating"
    # The controller persists each device's progress at once, the snapshot up to 1 s later.
    for i in range(1, 6):
        store.put_progress(DeviceProgress(f"dev{i:04d}", fleet.v2, UpdateState.UPDATE_FAILED,
                                          "flash", attempts=1))
    reader = open_reader(state)
    [status] = reader.collection_statuses()
    assert status.counts == {"UpdateFailed": 6}
    assert status.rollout["counts"] == status.counts
    assert (status.rollout["failed"], status.rollout["inFlight"]) == (6, 0)
    assert "reason" not in status.rollout and status.rollout["halted"] is False
    reader.close()


def test_a_push_s_resumptions_and_its_last_push_come_back_after_a_reopen(
        store: SqliteStore, state: Path | str, fleet: Any) -> None:
    store.apply_desired(fleet.snapshot(1))
    record = DeviceProgress("dev0000", fleet.v2, UpdateState.DOWNLOADING, "resumed",
                            attempts=1, resumes=2, pushed_at=1234.5)
    store.put_progress(record)
    store.close()
    again = open_store(state)
    try:
        assert again.progress("dev0000") == record
    finally:
        again.close()
