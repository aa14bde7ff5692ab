"""`progress_of` and `reports`: the records of many devices in one query per 500 ids, on
both engines (the `store` fixture), as `controller.reloads` reads a batch of devices
that came from other nodes and a revision's retarget reads a slice's reports; the IN
lists are padded to a few lengths, so a big revision makes no new SQL text per slice
(`store.fixed_in`); and `release_memory` gives back SQLite's page cache."""

from __future__ import annotations

import ctypes
import re
from typing import Any

import pytest

from reconciler.model.observed import DeviceProgress, DeviceReport
from reconciler.model.status import UpdateState
from reconciler.store import SqliteStore

FLEET = 510  # devices in the store: more than one query's 500 ids


def test_the_records_of_many_devices_come_back_by_id_and_the_missing_are_left_out(
        store: SqliteStore, fleet: Any) -> None:
    store.apply_desired(fleet.snapshot(3))
    records = {d: DeviceProgress(d, fleet.v2, UpdateState.DOWNLOADING, "", attempts=1)
               for d in ("dev0000", "dev0002")}
    for record in records.values():
        store.put_progress(record)
    asked = ["dev0000", "dev0001", "dev0002"] + [f"none{i}" for i in range(600)]
    assert store.progress_of(asked) == records
    assert store.progress_of([]) == {}


@pytest.mark.parametrize("count", [0, 1, 499, 500, 501])
def test_the_padded_queries_return_the_rows_of_exactly_the_ids_asked(
        store: SqliteStore, fleet: Any, count: int) -> None:
    """Every other device has a record; the first `count` ids (and, past the fleet, ids
    nobody has) are asked: the padding's repeated ids add nothing, miss nothing."""
    store.apply_desired(fleet.snapshot(FLEET))
    ids = [f"dev{i:04d}" for i in range(FLEET)]
    progress = {d: DeviceProgress(d, fleet.v2, UpdateState.DOWNLOADING, "", attempts=1)
                for d in ids[::2]}
    store.put_progress_many([(p, ()) for p in progress.values()])
    reports = {d: DeviceReport(f"ep-{d}", firmware_version="1.0") for d in ids[1::2]}
    for device_id, report in reports.items():
        store.put_report(device_id, report)
    asked = ids[:count] if count <= FLEET else ids + [f"none{i}" for i in range(count - FLEET)]
    assert store.progress_of(asked) == {d: progress[d] for d in asked if d in progress}
    assert store.reports(asked) == {d: reports[d] for d in asked if d in reports}
    assert store.reports(asked[::-1]) == store.reports(asked)  # any order of ids


def test_any_number_of_ids_is_asked_with_a_few_sql_texts(
        sqlite_store: SqliteStore, fleet: Any) -> None:
    """SQLite compiles (and the sqlite3 module caches) a statement per SQL text: one per
    length of the IN list would make a new one for nearly every slice of a big revision."""
    sqlite_store.apply_desired(fleet.snapshot(3))
    lengths: set[int] = set()

    def seen(sql: str) -> None:
        if (found := re.search(r"IN \(([^()]*)\)", sql)) is not None:
            lengths.add(found.group(1).count(",") + 1)

    sqlite_store._reads.set_trace_callback(seen)
    for count in range(1, 1_100, 13):
        sqlite_store.reports([f"dev{i:04d}" for i in range(count)])
    assert lengths and len(lengths) <= 4, sorted(lengths)


def test_release_memory_gives_back_the_page_cache_and_reads_go_on(
        sqlite_store: SqliteStore, fleet: Any) -> None:
    """After reading a big table the read connection holds its pages (up to SQLite's
    cache_size); `release_memory` (after a big revision) hands them back."""
    used = ctypes.CDLL("libsqlite3.so.0").sqlite3_memory_used
    used.restype = ctypes.c_int64
    sqlite_store.apply_desired(fleet.snapshot(2_000))
    ids = [f"dev{i:04d}" for i in range(2_000)]
    sqlite_store.put_progress_many(
        [(DeviceProgress(d, fleet.v2, UpdateState.DOWNLOADING, "x" * 200), ()) for d in ids])
    assert len(sqlite_store.progress_of(ids)) == 2_000  # the pages in the read cache
    before = used()
    sqlite_store.release_memory()
    assert before - used() > 400_000, (before, used())
    assert len(sqlite_store.progress_of(ids)) == 2_000
