"""The event log as a feed (cursor, filters, pages) and the hub that wakes its readers."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

from reconciler.model.observed import DeviceEvent, DeviceProgress
from reconciler.model.status import UpdateState
from reconciler.store import EventHub, SqliteStore, open_reader, open_store
from reconciler.store.event_log import MAX_PAGE
from reconciler.store.schema import MIGRATIONS

OTHER = "17dh0cf43jfhaa"


def _log(store: SqliteStore, device_id: str, n: int, start: float = 0.0) -> None:
    events = [DeviceEvent(device_id, start + i, "state", f"{device_id} #{i}", "r1")
              for i in range(n)]
    store.put_progress(DeviceProgress(device_id, None, UpdateState.PENDING), events)


def test_events_after_pages_the_log_from_a_cursor_oldest_first(
        store: SqliteStore, state: Path | str, fleet: Any) -> None:
    store.apply_desired(fleet.snapshot(3))
    for d in ("dev0000", "dev0001", "dev0002"):
        _log(store, d, 4)
    reader = open_reader(state)
    first = reader.events_after(0, limit=5)
    rest = reader.events_after(first[-1].seq, limit=100)
    seqs = [e.seq for e in first + rest]
    assert len(seqs) == 12 and seqs == sorted(set(seqs))
    assert [e.message for e in first[:2]] == ["dev0000 #0", "dev0000 #1"]
    assert {e.collection_id for e in first + rest} == {fleet.cid}
    assert reader.events_after(seqs[-1]) == []
    assert reader.last_event_seq() == store.last_event_seq() == seqs[-1]
    reader.close()


def test_events_after_filters_by_device_and_by_the_collection_at_write_time(
        store: SqliteStore, fleet: Any) -> None:
    store.apply_desired(fleet.snapshot(2))
    _log(store, "dev0000", 3)
    _log(store, "dev0001", 2)
    _log(store, "gone0000", 1)  # a device the desired state does not know: no collection
    by_device = store.events_after(0, device="dev0001")
    assert [e.message for e in by_device] == ["dev0001 #0", "dev0001 #1"]
    assert len(store.events_after(0, collection=fleet.cid)) == 5
    assert store.events_after(0, collection=OTHER) == []
    both = store.events_after(by_device[0].seq, collection=fleet.cid, device="dev0001")
    assert [e.message for e in both] == ["dev0001 #1"]
    assert [e.collection_id for e in store.events_after(0, device="gone0000")] == [None]


def test_a_page_never_exceeds_the_cap_whatever_the_caller_asks(
        store: SqliteStore, fleet: Any) -> None:
    store.apply_desired(fleet.snapshot(1))
    _log(store, "dev0000", MAX_PAGE + 5)
    assert len(store.events_after(0, limit=10**9)) == MAX_PAGE
    assert store.events_after(0, limit=-3) == []


def test_migration_6_gives_events_written_before_it_their_device_collection(
        db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path, isolation_level=None)
    for step in MIGRATIONS[:5]:
        conn.executescript(step)
    conn.execute("PRAGMA user_version = 5")
    conn.execute("INSERT INTO devices VALUES ('dev0000', 'coll0000', 'ep', NULL, NULL, NULL,"
                 " '{}')")
    conn.execute("INSERT INTO events (device_id, at, kind, message, revision) VALUES "
                 "('dev0000', 1.0, 'state', 'old', 'r0')")
    conn.close()
    store = open_store(db_path)
    try:
        [event] = store.events_after(0, collection="coll0000")
        assert (event.device_id, event.message) == ("dev0000", "old")
    finally:
        store.close()


async def test_a_commit_with_events_wakes_a_subscriber_and_one_without_does_not(
        store: SqliteStore, fleet: Any) -> None:
    store.apply_desired(fleet.snapshot(1))
    with store.event_hub.subscribe() as sub:
        store.put_progress(DeviceProgress("dev0000", None, UpdateState.PENDING))
        assert await sub.wait(0.05) is False
        _log(store, "dev0000", 1)
        assert await sub.wait(5) is True
        assert await sub.wait(0.05) is False  # the wake was consumed
    assert store.event_hub.subscribers() == 0


async def test_a_publish_from_a_worker_thread_wakes_every_subscriber_of_the_loop() -> None:
    hub = EventHub()
    subs = [hub.subscribe() for _ in range(3)]
    thread = threading.Thread(target=hub.publish)
    thread.start()
    woken = await asyncio.gather(*(s.wait(5) for s in subs))
    thread.join()
    assert woken == [True, True, True]
    subs[0].close()
    hub.publish()
    assert await subs[0].wait(0.05) is False  # closed: no longer woken
    assert await subs[1].wait(5) is True
    for s in subs[1:]:
        s.close()
    assert hub.subscribers() == 0
