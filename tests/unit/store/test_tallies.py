"""The tallies the triggers keep (state counts, change stamps) against a full scan.

Random writes of every kind that moves a device's state (desired snapshots that retarget
or drop devices, reports, progress written and replaced) on a real SQLite file and a
real PostgreSQL database; after each one the triggers' counts equal the GROUP BY over
every device row.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from reconciler.model.observed import DeviceProgress, DeviceReport
from reconciler.model.status import UpdateState
from reconciler.store import SqliteStore, open_reader
from reconciler.store.pg.dialect import STATE_SQL as PG_STATE_SQL
from reconciler.store.state_sql import STATE_SQL

SCAN = ("SELECT d.collection_id, {} AS s, COUNT(*) FROM devices d "
        "LEFT JOIN progress p ON p.device_id = d.device_id GROUP BY d.collection_id, s")


def _scanned(state: Path | str) -> set[tuple[str, str | None, int]]:
    reader = open_reader(state)
    scan = SCAN.format(PG_STATE_SQL if isinstance(state, str) else STATE_SQL)
    try:
        return {tuple(r) for r in reader._rows(scan)}  # type: ignore[misc]
    finally:
        reader.close()


def _tallied(state: Path | str) -> set[tuple[str, str | None, int]]:
    reader = open_reader(state)
    try:
        return set(reader.state_counts())
    finally:
        reader.close()


def test_state_counts_follow_every_kind_of_write(store: SqliteStore, state: Path | str,
                                                 fleet: Any) -> None:
    rng = random.Random(7)
    store.apply_desired(fleet.snapshot(12))
    states = [UpdateState.DOWNLOADING, UpdateState.UPDATING, UpdateState.UPDATE_FAILED]
    for step in range(60):
        dev = f"dev{rng.randrange(12):04d}"
        kind = rng.randrange(5)
        if kind == 0:
            store.apply_desired(fleet.snapshot(rng.randrange(6, 13),
                                               target=rng.choice([fleet.v1, fleet.v2]),
                                               revision=f"r{step}"))
        elif kind == 1:
            store.put_report(dev, DeviceReport(f"ep-{dev}",
                                               firmware_version=rng.choice(["1.0", "2.0"])))
        else:
            store.put_progress(DeviceProgress(dev, rng.choice([fleet.v1, fleet.v2]),
                                              rng.choice(states), "step", attempts=1))
        assert _tallied(state) == _scanned(state), step


def test_a_collections_stamp_grows_with_each_change_and_names_the_changed_devices(
        store: SqliteStore, state: Path | str, fleet: Any) -> None:
    store.apply_desired(fleet.snapshot(5))
    reader = open_reader(state)
    try:
        before = reader.change_stamp(fleet.cid)
        store.put_report("dev0003", DeviceReport("ep-3", firmware_version="2.0"))
        store.put_progress(DeviceProgress("dev0001", fleet.v2, UpdateState.DOWNLOADING, "b"))
        after = reader.change_stamp(fleet.cid)
        assert after > before
        assert sorted(reader.changed_devices(fleet.cid, before)) == ["dev0001", "dev0003"]
        assert reader.changed_devices(fleet.cid, after) == []
        assert reader.change_stamp("no-such-collection") == 0
    finally:
        reader.close()
