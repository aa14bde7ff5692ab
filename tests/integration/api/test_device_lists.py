"""Device lists under writes: re-rendered from the devices that changed only, always equal
to a whole render, and left cached while only other collections' devices change."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from builders.desired import CID, collection, desired_state, device

from reconciler.api import create_app
from reconciler.api.device_lists import BLOCK, DeviceLists
from reconciler.api.render import wrap_list
from reconciler.model.observed import DeviceProgress, DeviceReport
from reconciler.model.status import UpdateState
from reconciler.store import SqliteReader, SqliteStore, open_reader, open_store

TOKEN = "lists-token"


class Counting:
    """The real reader, counting the device rows each list render reads."""

    def __init__(self, reader: SqliteReader) -> None:
        self._reader = reader
        self.rows_read: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)

    def devices_json_rows(self, collection_id: str, ids: Sequence[str] | None = None
                          ) -> list[tuple[str, str]]:
        rows = self._reader.devices_json_rows(collection_id, ids)
        self.rows_read.append(len(rows))
        return rows


def _whole(reader: SqliteReader, cid: str) -> bytes:
    return wrap_list("devices", reader.devices_json(cid))


def test_a_list_rereads_only_the_changed_devices_and_equals_a_whole_render(
        reader: SqliteReader, store: SqliteStore, ref: Any) -> None:
    counting = Counting(reader)
    lists = DeviceLists(counting)  # type: ignore[arg-type]
    assert lists.render(ref.cid) == _whole(reader, ref.cid)
    assert counting.rows_read == [2]  # both devices of the collection, once
    store.put_progress(DeviceProgress(ref.device2, ref.new, UpdateState.UPDATING, "installing",
                                      attempts=1))
    assert lists.render(ref.cid) == _whole(reader, ref.cid)
    store.put_report(ref.device, DeviceReport("urn:imei:1", firmware_version="2.0"))
    assert lists.render(ref.cid) == _whole(reader, ref.cid)
    assert lists.render(ref.cid) == _whole(reader, ref.cid)  # nothing changed: no rows
    assert counting.rows_read == [2, 1, 1, 0]
    store.apply_desired(ref.desired())  # a new revision: the desired rows may differ
    assert lists.render(ref.cid) == _whole(reader, ref.cid)
    assert counting.rows_read[-1] == 2


async def test_a_collections_list_stays_cached_while_another_collection_changes(
        reader: SqliteReader, store: SqliteStore, ref: Any) -> None:
    counting = Counting(reader)
    app = create_app(counting, tokens=[TOKEN])  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api.test",
                                 headers={"X-API-Token": TOKEN}) as http:
        url = f"/collections/{ref.cid}/devices"
        first = (await http.get(url)).content
        store.put_report(ref.stranger, DeviceReport("urn:imei:3", firmware_version="7.0"))
        assert (await http.get(url)).content == first
        assert counting.rows_read == [2]
        store.put_progress(DeviceProgress(ref.device2, ref.new, UpdateState.UPDATING, "x",
                                          attempts=1))
        changed = (await http.get(url)).json()["devices"]
        assert [d["firmware"]["state"] for d in changed] == ["Downloading", "Updating"]
        assert counting.rows_read == [2, 1]


def test_a_list_of_many_blocks_rejoins_only_what_changed_and_equals_a_whole_render(
        tmp_path: Path) -> None:
    count = 2 * BLOCK + 40  # three blocks, the last one short
    store = open_store(tmp_path / "many.db")
    store.apply_desired(desired_state(collection(), devices=[
        device(f"d{n:04d}") for n in range(count)]))
    reader = open_reader(tmp_path / "many.db")
    try:
        counting = Counting(reader)
        lists = DeviceLists(counting)  # type: ignore[arg-type]
        assert lists.render(CID) == _whole(reader, CID)
        for n in (0, BLOCK - 1, BLOCK, count - 1):  # each block's edges
            store.put_report(f"d{n:04d}", DeviceReport(f"ep-{n:04d}", firmware_version="1.0"))
            assert lists.render(CID) == _whole(reader, CID)
        assert counting.rows_read == [count, 1, 1, 1, 1]
    finally:
        reader.close()
        store.close()
