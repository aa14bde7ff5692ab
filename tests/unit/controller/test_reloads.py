"""`Reloads`: devices a Register moved here from another node, their records and
reports read back in batches on a real SQLite file, and what the reads cost."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from reconciler.controller.config import ControllerConfig
from reconciler.controller.decide import Decider
from reconciler.controller.reloads import BATCH, Reloads
from reconciler.controller.reports import Reports
from reconciler.model.observed import DeviceProgress, DeviceReport
from reconciler.model.status import UpdateState
from reconciler.store import SqliteStore, open_store

DEVICES = 2 * BATCH + 200


class _Counted:
    """The store's reads, counted."""

    def __init__(self, store: SqliteStore) -> None:
        self.store, self.reads = store, 0

    def progress_of(self, device_ids: Sequence[str]) -> dict[str, DeviceProgress]:
        self.reads += 1
        return self.store.progress_of(device_ids)

    def reports(self, device_ids: Sequence[str]) -> dict[str, DeviceReport]:
        self.reads += 1
        return self.store.reports(device_ids)

    def report(self, device_id: str) -> DeviceReport | None:
        self.reads += 1
        return self.store.report(device_id)


class _Decider:
    """What the Decider's index would hold (the part `Reloads` calls)."""

    def __init__(self) -> None:
        self.index: dict[str, DeviceProgress | None] = {}

    def reloaded(self, device_id: str, progress: DeviceProgress | None) -> bool:
        self.index[device_id] = progress
        return True


async def test_devices_from_other_nodes_are_read_in_batches_and_their_reports_primed(
        tmp_path: Path) -> None:
    store = open_store(tmp_path / "state.db")
    try:
        ids = [f"d{i:05d}" for i in range(DEVICES)]
        theirs = DeviceProgress("d00007", "img", UpdateState.DOWNLOADING, "", attempts=1)
        store.put_progress(theirs)
        store.put_report("d00009", DeviceReport(endpoint="ep-9", firmware_version="1.0"))
        counted, decider, woken = _Counted(store), _Decider(), []
        reports = Reports(counted)  # type: ignore[arg-type]
        reloads = Reloads(counted, decider, reports, woken.extend)
        for device_id in ids:
            reloads.add(device_id)
        assert reloads.holds("d00007")
        await reloads.settled()
        assert counted.reads == 2 * 3  # a record query and a report query per batch
        assert sorted(woken) == ids and not reloads.holds("d00007")
        assert decider.index["d00007"] == theirs and decider.index["d00008"] is None
        found = reports.get("d00009")
        assert found is not None and found.firmware_version == "1.0"
        assert [reports.get(d) for d in ids[:100] if d != "d00009"] == [None] * 99
        assert counted.reads == 6  # their absence was primed: no query per device
    finally:
        store.close()


async def test_a_device_that_moves_again_while_its_batch_is_read_is_read_again(
        tmp_path: Path) -> None:
    store = open_store(tmp_path / "state.db")
    try:
        counted, decider, woken = _Counted(store), _Decider(), []
        reloads = Reloads(counted, decider, Reports(counted),  # type: ignore[arg-type]
                          woken.extend)
        newer = DeviceProgress("d1", "img", UpdateState.DOWNLOADED, "", attempts=1)
        first = counted.progress_of

        def progress_of(device_ids: Sequence[str]) -> dict[str, DeviceProgress]:
            found = first(device_ids)
            if counted.reads == 1:
                # Another node wrote d1's record after this read, and a second Register
                # moved d1 here again: what the first read found is stale.
                store.put_progress(newer)
                reloads.add("d1")
            return found

        counted.progress_of = progress_of  # type: ignore[method-assign]
        reloads.add("d1")
        reloads.add("d2")
        await reloads.settled()
        assert woken == ["d2", "d1"] and decider.index == {"d2": None, "d1": newer}
        assert counted.reads == 4  # two batches: d1 was read twice
    finally:
        store.close()


async def test_a_device_a_revision_removed_while_its_batch_was_read_is_not_cached(
        tmp_path: Path) -> None:
    """The real Decider, with nothing desired (a revert took the device away between the
    Register and its batch): the batch wakes it but the report cache stays empty, since
    the cache is bounded by the desired devices."""
    store = open_store(tmp_path / "state.db")
    try:
        store.put_report("gone", DeviceReport(endpoint="ep-gone", firmware_version="1.0"))
        reports, woken = Reports(store), []
        decider = Decider(store, reports, None, None,  # type: ignore[arg-type]
                          ControllerConfig(), time.time)
        reloads = Reloads(store, decider, reports, woken.extend)
        reloads.add("gone")
        await reloads.settled()
        assert woken == ["gone"]
        assert "gone" not in reports._known and "gone" not in reports._absent
    finally:
        store.close()
