"""What other nodes wrote, read back in commit order (issue 13, rollout guards across
nodes): `change_seq` before a load, then `progress_changes` from that stamp on, on both
engines (the `store` fixture)."""

from __future__ import annotations

from typing import Any

from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState
from reconciler.store import SqliteStore

Fleet = Any  # the `fleet` fixture (conftest cannot be imported)


def _record(device_id: str, state: UpdateState, at: float) -> DeviceProgress:
    return DeviceProgress(device_id, "17dh0cf43jfh08", state, state.value, updated_at=at)


def test_the_records_changed_after_a_stamp_come_back_once_in_batches(
        store: SqliteStore, fleet: Fleet) -> None:
    store.apply_desired(fleet.snapshot(4))
    store.put_progress(_record("dev0000", UpdateState.PENDING, 1.0))
    start = store.change_seq()  # what a load read is older than this
    store.put_progress_many([(_record(f"dev000{n}", UpdateState.DOWNLOADING, 2.0), ())
                             for n in (1, 2)])
    store.put_progress(_record("dev0000", UpdateState.UPDATE_FAILED, 3.0))
    first, some = store.progress_changes(fleet.cid, start, limit=2)
    rest_at, rest = store.progress_changes(fleet.cid, first, limit=2)
    nothing_at, nothing = store.progress_changes(fleet.cid, rest_at, limit=2)
    assert [(p.device_id, p.state) for p in some + rest] == [
        ("dev0001", UpdateState.DOWNLOADING), ("dev0002", UpdateState.DOWNLOADING),
        ("dev0000", UpdateState.UPDATE_FAILED)]
    assert start < first < rest_at == nothing_at and nothing == []
    assert store.progress_changes("no-such-collection", start, limit=2) == (start, [])
