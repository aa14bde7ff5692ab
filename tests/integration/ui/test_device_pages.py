"""The store's keyset pages (`SqliteReader.device_page`) over a real SQLite file: walking
the cursors returns exactly the filtered list, once and in order, whichever path serves
the filter (the progress state index, or the bounded scan window)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fleet import CID, NEW, OLD, device_id, fleet_store

from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState
from reconciler.store import DeviceQuery, SqliteReader, open_reader
from reconciler.store import pages as store_pages

COUNT = 130


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteReader]:
    path = tmp_path_factory.mktemp("pages") / "fota.db"
    store = fleet_store(path, COUNT)
    # A progress record about an older target is history: the device is Pending now.
    store.put_progress(DeviceProgress(device_id(1), OLD, UpdateState.UPDATE_FAILED, "old",
                                      attempts=1))
    store.put_progress(DeviceProgress(device_id(129), NEW, UpdateState.UPDATE_FAILED,
                                      "Update Result 5", attempts=1))
    store.close()
    opened = open_reader(path)
    yield opened
    opened.close()


def walk(reader: SqliteReader, **filters: object) -> tuple[list[str], int]:
    """Every id the cursors lead to, and how many pages that took."""
    ids: list[str] = []
    after, pages = None, 0
    while True:
        page = reader.device_page(DeviceQuery(after=after, limit=20, **filters))  # type: ignore[arg-type]
        pages += 1
        ids += [d.device_id for d in page.devices]
        assert len(page.devices) <= 20
        if page.resume_after is None:
            return ids, pages
        assert page.resume_after > (after or "")  # always forward: the walk ends
        after = page.resume_after


def expected(reader: SqliteReader, state: str | None = None, site: str | None = None
             ) -> list[str]:
    return [d.device_id for d in reader.devices(CID)
            if (state is None or d.state == state) and (site is None or d.tags["site"] == site)]


@pytest.mark.parametrize("filters", [
    {}, {"collection_id": CID}, {"state": "Current"}, {"state": "Pending"},
    {"state": "Downloading"}, {"state": "UpdateFailed"}, {"state": "Reverted"},
    {"tag": ("site", "s2")}, {"state": "Pending", "tag": ("site", "s0")},
    {"state": "Downloading", "tag": ("site", "s1")}, {"tag": ("nowhere", "x")},
])
def test_walking_the_cursors_returns_the_filtered_list_once_in_order(
        reader: SqliteReader, filters: dict[str, object], monkeypatch: pytest.MonkeyPatch
        ) -> None:
    state, tag = filters.get("state"), filters.get("tag")
    site = tag[1] if isinstance(tag, tuple) and tag[0] == "site" else None
    want = [] if tag == ("nowhere", "x") else expected(reader, state, site)  # type: ignore[arg-type]
    assert walk(reader, **filters)[0] == want
    # A small scan window: the pages come out shorter, the walk the same.
    monkeypatch.setattr(store_pages, "SCAN_WINDOW", 25)
    ids, pages = walk(reader, **filters)
    assert ids == want
    if state in (None, "Current", "Pending") and (tag or state):
        assert pages >= COUNT // 25  # each page looked at no more than the window


def test_a_state_recorded_for_an_older_target_does_not_count(reader: SqliteReader) -> None:
    failed = reader.device_page(DeviceQuery(state="UpdateFailed"))
    assert [d.device_id for d in failed.devices] == [device_id(129)]
    assert failed.resume_after is None


def test_a_tag_key_with_a_quote_and_a_page_size_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot contain"):
        DeviceQuery(tag=('a"b', "x"))
    for size in (0, store_pages.MAX_PAGE + 1):
        with pytest.raises(ValueError, match="page size"):
            DeviceQuery(limit=size)
