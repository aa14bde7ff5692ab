"""`progress_of`: the progress records of many devices in one query per 500 ids, on
both engines (the `store` fixture), as `controller.reloads` reads a batch of devices
that came from other nodes."""

from __future__ import annotations

from typing import Any

from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState
from reconciler.store import SqliteStore


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
