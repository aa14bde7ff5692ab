"""`Reports`: the controller's write-through view of the store's device reports, on a
real SQLite file."""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Any

from reconciler.controller.reports import Reports
from reconciler.model.lwm2m import DEV_FIRMWARE_VERSION, FW_STATE, FirmwareState
from reconciler.model.observed import DeviceReport
from reconciler.store import SqliteStore, open_store


def test_a_merged_report_is_in_the_store_and_read_back_without_a_query(
        tmp_path: FsPath) -> None:
    store = open_store(tmp_path / "state.db")
    try:
        reports = Reports(store)
        merged = reports.merge("d1", "ep-1", {DEV_FIRMWARE_VERSION: "1.0"}, 10.0)
        assert store.report("d1") == merged
        store.put_report("d1", DeviceReport(endpoint="ep-1"))  # behind the cache's back
        assert reports.get("d1") == merged  # the controller is the only writer
        again = reports.merge("d1", "ep-1", {FW_STATE: 1}, 11.0)
        assert again.firmware_version == "1.0" and again.fw_state is FirmwareState.DOWNLOADING
        assert store.report("d1") == again
    finally:
        store.close()


def test_a_report_written_by_an_earlier_run_is_read_from_the_store(tmp_path: FsPath) -> None:
    store = open_store(tmp_path / "state.db")
    try:
        store.put_report("d2", DeviceReport(endpoint="ep-2", firmware_version="2.0"))
        reports = Reports(store)
        assert reports.get("missing") is None
        found = reports.get("d2")
        assert found is not None and found.firmware_version == "2.0"
    finally:
        store.close()


def test_a_forgotten_device_leaves_the_cache_but_its_report_stays_stored(
        tmp_path: FsPath) -> None:
    store = open_store(tmp_path / "state.db")
    try:
        reports = Reports(store)
        merged = reports.merge("d3", "ep-3", {DEV_FIRMWARE_VERSION: "3.0"}, 10.0)
        reports.forget("d3")  # the device left the desired state
        store.put_report("d3", DeviceReport(endpoint="ep-3"))
        assert reports.get("d3") == DeviceReport(endpoint="ep-3") != merged  # read again
        reports.forget("never-cached")
    finally:
        store.close()


def test_many_reports_are_read_at_once_the_cached_ones_from_memory(tmp_path: FsPath) -> None:
    store = open_store(tmp_path / "state.db")
    try:
        stored = {f"d{i:04d}": DeviceReport(endpoint=f"ep-{i}", firmware_version=str(i))
                  for i in range(0, 1200, 3)}  # more than one query's worth of ids
        for device_id, report in stored.items():
            store.put_report(device_id, report)
        reports = Reports(store)
        cached = reports.merge("d0003", "ep-3", {DEV_FIRMWARE_VERSION: "cached"}, 10.0)
        store.put_report("d0003", DeviceReport(endpoint="ep-3"))  # behind the cache's back
        asked = [f"d{i:04d}" for i in range(1200)]
        assert reports.get_many(asked) == {**stored, "d0003": cached}
        assert store.reports(asked[:7]) == {"d0000": stored["d0000"],
                                            "d0003": DeviceReport(endpoint="ep-3"),
                                            "d0006": stored["d0006"]}
        # Devices without a report are remembered as such (only this node writes them
        # while it owns them); one that comes back from another node is read again.
        store.put_report("d0001", DeviceReport(endpoint="ep-1", firmware_version="late"))
        assert reports.get("d0001") is None and reports.get_many(["d0001"]) == {}
        reports.forget("d0001")
        late = reports.get("d0001")
        assert late is not None and late.firmware_version == "late"
        assert reports.get_many([]) == {}
    finally:
        store.close()


class _Counted:
    """The store's report reads, counted (what a Register of a silent device costs)."""

    def __init__(self, store: SqliteStore) -> None:
        self.store, self.asked = store, 0

    def report(self, device_id: str) -> DeviceReport | None:
        self.asked += 1
        return self.store.report(device_id)

    def put_report(self, device_id: str, report: DeviceReport, **kw: Any) -> None:
        self.store.put_report(device_id, report, **kw)


def test_a_device_without_a_report_costs_one_query_until_it_reports_or_is_forgotten(
        tmp_path: FsPath) -> None:
    store = open_store(tmp_path / "state.db")
    try:
        counted = _Counted(store)
        reports = Reports(counted)  # type: ignore[arg-type]
        assert [reports.get("silent") for _ in range(5)] == [None] * 5
        assert counted.asked == 1
        merged = reports.merge("silent", "ep-s", {DEV_FIRMWARE_VERSION: "1.0"}, 10.0)
        assert reports.get("silent") == merged and counted.asked == 1
        reports.forget("silent")  # it left, or came back from another node
        assert reports.get("silent") == merged and counted.asked == 2
        reports.fill("silent", None)  # a batch's older read does not replace it
        assert reports.get("silent") == merged and counted.asked == 2
    finally:
        store.close()
