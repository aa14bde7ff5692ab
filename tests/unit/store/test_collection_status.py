"""The collection status row several nodes write (issue 13, the status row race), on
both engines (the `store` fixture): each node writes it from its own rollout index,
which counts the other nodes' devices as far as its progress feed has read. Two nodes
are two indexes with a feed each on one store, as the Decider keeps them."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg

from reconciler.cluster.progress_feed import ProgressFeed
from reconciler.controller.rollout import RolloutIndex
from reconciler.model.desired import Collection, FailureThreshold, RolloutPolicy
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState
from reconciler.store import SqliteStore, collection_status, open_reader
from reconciler.store.pg import PgStore
from reconciler.store.pg.connection import QmarkConnection

Fleet = Any  # the `fleet` fixture (conftest cannot be imported)


class _Node:
    """A node's rollout index, fed by its progress feed, and its status writes."""

    def __init__(self, store: SqliteStore, collection: Collection) -> None:
        self.store, self.collection = store, collection
        self.feed, self.index = ProgressFeed(store), RolloutIndex()
        self.feed.begin()

    def write(self, progress: DeviceProgress) -> None:
        self.store.put_progress(progress)
        self.index.put(self.collection.collection_id, progress)

    def follow(self) -> None:
        for record in self.feed.read([self.collection.collection_id]):
            self.index.put(self.collection.collection_id, record)

    def flush(self, revision: str) -> None:
        cid = self.collection.collection_id
        self.store.put_collection_status(cid, self.index.status(self.collection, revision),
                                         stamp=self.feed.position(cid))


def _shown(state: Path | str) -> tuple[bool, str | None, str | None]:
    """(halted, reason, revision) as the API and /metrics read them."""
    reader = open_reader(state)
    try:
        [status] = reader.collection_statuses()
    finally:
        reader.close()
    rollout = status.rollout
    return bool(rollout.get("halted")), rollout.get("reason"), rollout.get("revision")


def _failed(device_id: str, target: str) -> DeviceProgress:
    return DeviceProgress(device_id, target, UpdateState.UPDATE_FAILED, "flash", attempts=1)


def test_a_lagging_nodes_status_neither_replaces_a_newer_one_nor_lifts_its_halt(
        store: SqliteStore, state: Path | str, fleet: Fleet) -> None:
    desired = fleet.snapshot(4, revision="r1")
    store.apply_desired(desired)
    policy = RolloutPolicy(failure_threshold=FailureThreshold(count=2))
    coll = replace(desired.collections[fleet.cid], rollout=policy)
    a, b = _Node(store, coll), _Node(store, coll)
    b.write(_failed("dev0000", fleet.v2))  # one failure at each node: two in all
    a.write(_failed("dev0001", fleet.v2))
    a.follow()  # a has read b's failure: halted
    a.flush("r1")
    assert _shown(state)[0]
    b.flush("r1")  # b has not read a's yet (its feed lags): one failure, not halted
    halted, reason, _ = _shown(state)
    assert halted and reason is not None and "2 of 2 devices failed" in reason
    # b reads on past a's position, and a device recovers within the revision: the
    # newer status stands, the halt seen in r1 stays until a commit lifts it.
    b.follow()
    b.write(DeviceProgress("dev0000", fleet.v2, UpdateState.CURRENT, "", attempts=1))
    b.follow()
    b.flush("r1")
    reader = open_reader(state)
    [status] = reader.collection_statuses()
    reader.close()
    assert status.rollout["halted"] and status.rollout["failed"] == 1
    assert status.rollout["reason"] == reason


def test_only_a_status_of_the_applied_revision_lifts_a_halt(
        store: SqliteStore, state: Path | str, fleet: Fleet) -> None:
    store.apply_desired(fleet.snapshot(2, revision="r1"))
    halted = {"revision": "r1", "halted": True, "reason": "rollout halted: 2 of 2"}
    store.put_collection_status(fleet.cid, halted, stamp=5)
    # a node still on r0 (its copy of the repository lags) far along the feed
    store.put_collection_status(fleet.cid, {"revision": "r0", "halted": False}, stamp=50)
    assert _shown(state) == (True, "rollout halted: 2 of 2", "r1")
    store.apply_desired(fleet.snapshot(2, revision="r2", target=fleet.v1))
    # the first status of r2 replaces r1's whatever its position, halt and all
    store.put_collection_status(fleet.cid, {"revision": "r2", "halted": False}, stamp=3)
    assert _shown(state) == (False, None, "r2")
    store.put_collection_status(fleet.cid, halted, stamp=9)  # r1 is no longer applied
    assert _shown(state) == (False, None, "r2")


def test_a_status_written_without_a_position_replaces_the_row_as_it_is(
        store: SqliteStore, state: Path | str, fleet: Fleet) -> None:
    """One node (no feed): nothing to order, and its halt lifts with its own status."""
    store.apply_desired(fleet.snapshot(2, revision="r1"))
    store.put_collection_status(fleet.cid, {"revision": "r1", "halted": True,
                                            "reason": "2 failures"})
    store.put_collection_status(fleet.cid, {"revision": "r1", "halted": False})
    assert _shown(state) == (False, None, "r1")


def test_a_halt_recorded_and_lifted_appends_one_rollout_event_each(
        store: SqliteStore, fleet: Fleet) -> None:
    """The event `/events` and `fota status --watch` see at once; a halt restated (a
    new reason, a lagging node's write) appends nothing."""
    store.apply_desired(fleet.snapshot(2, revision="r1"))
    start = store.last_event_seq()
    reason = "rollout halted: 2 of 2 devices failed"
    store.put_collection_status(fleet.cid, {"revision": "r1", "halted": False}, stamp=1)
    store.put_collection_status(fleet.cid, {"revision": "r1", "halted": True,
                                            "reason": reason}, stamp=5, at=11.0)
    store.put_collection_status(fleet.cid, {"revision": "r1", "halted": True,
                                            "reason": "3 of 2"}, stamp=6, at=12.0)
    store.put_collection_status(fleet.cid, {"revision": "r0", "halted": False}, stamp=50)
    store.apply_desired(fleet.snapshot(2, revision="r2", target=fleet.v1))
    store.put_collection_status(fleet.cid, {"revision": "r2", "halted": False}, stamp=3,
                                at=13.0)
    events = store.events_after(start, collection=fleet.cid)
    assert [(e.device_id, e.kind, e.message, e.revision, e.at) for e in events] == [
        ("", "rollout", reason, "r1", 11.0),
        ("", "rollout", f"rollout resumed: no longer halted ({reason})", "r2", 13.0)]


def _waiting_on_a_lock(conn: psycopg.Connection[Any], application: str) -> bool:
    """Whether a session of `application` waits for a lock another transaction holds
    (polled: PostgreSQL announces no such wait)."""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                           "%s AND wait_event_type = 'Lock'", (application,)).fetchone()
        if row and row[0]:
            return True
        time.sleep(0.01)
    return False


def test_two_nodes_recording_a_collections_first_halt_append_one_event(
        pg_store: PgStore, pg_url: str, fleet: Fleet) -> None:
    """No row to lock yet: the second node's write waits for the first's insert and then
    reads its halt (before: both read none and both appended the event)."""
    pg_store.apply_desired(fleet.snapshot(2, revision="r1"))
    start = pg_store.last_event_seq()
    halted = {"revision": "r1", "halted": True, "reason": "rollout halted: 2 of 2"}
    with psycopg.connect(pg_url, autocommit=True, application_name="node-a") as raw:
        raw.execute("BEGIN")  # node a, mid-write: its first status row not yet committed
        assert collection_status.write(QmarkConnection(raw), fleet.cid, "{}", "r1",
                                       halted["reason"], stamp=5, at=1.0)
        thread = threading.Thread(target=lambda: pg_store.put_collection_status(
            fleet.cid, halted, stamp=6, at=2.0))
        thread.start()
        try:
            assert _waiting_on_a_lock(raw, "fota-writer")
        finally:
            raw.execute("COMMIT")
            thread.join(10.0)
        assert not thread.is_alive()
    events = pg_store.events_after(start, collection=fleet.cid)
    assert [(e.kind, e.message, e.at) for e in events] == [
        ("rollout", "rollout halted: 2 of 2", 1.0)]
