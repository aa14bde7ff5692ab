"""apply_in_slices: a big snapshot is written as many short transactions, never one long
one, and the slices together leave exactly the rows one transaction would."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reconciler.store import open_reader
from reconciler.store.desired_sync import (
    SLICE,
    SORT_SLICE,
    apply_in_slices,
    merge_unique,
    slices,
    sorted_in_slices,
)
from reconciler.store.schema import migrate
from reconciler.store.writer import connect

# total_changes counts trigger writes too: per device row, the tallies' triggers write at
# most a state count, the device's old change row (deleted) and its new one.
PER_ROW = 1 + 3


class CountingTx:
    """Real transactions on a real file, counting each and the rows it changed."""

    def __init__(self, path: Path) -> None:
        self.conn = connect(path)
        migrate(self.conn)
        self.changes: list[int] = []

    @contextmanager
    def __call__(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        before = self.conn.total_changes
        yield self.conn
        self.conn.execute("COMMIT")
        self.changes.append(self.conn.total_changes - before)


def test_a_big_snapshot_and_its_revert_are_written_a_slice_per_transaction(
        tmp_path: Path, fleet: Any) -> None:
    path = tmp_path / "state.db"
    tx = CountingTx(path)
    big = 4 * SLICE + 7
    assert apply_in_slices(tx, fleet.snapshot(big)) == big + 1 + 2  # + collection, images
    assert max(tx.changes) <= SLICE * PER_ROW and len(tx.changes) >= big // SLICE
    tx.changes.clear()
    assert apply_in_slices(tx, fleet.snapshot(3, revision="r2")) == big - 3
    assert max(tx.changes) <= SLICE * PER_ROW and len(tx.changes) >= big // SLICE
    reader = open_reader(path)
    assert [d.device_id for d in reader.devices(fleet.cid)] == ["dev0000", "dev0001", "dev0002"]
    reader.close()
    tx.conn.close()


def test_slices_cover_every_key_once_and_the_last_range_is_open_above() -> None:
    keys = [f"k{i:03d}" for i in range(11)]
    found = list(slices(keys, 4))
    assert [chunk for _, chunk in found] == [keys[0:4], keys[4:8], keys[8:11]]
    assert [(r.after, r.upto) for r, _ in found] == [
        (None, "k003"), ("k003", "k007"), ("k007", None)]
    assert [(r.after, r.upto, c) for r, c in slices([], 4)] == [(None, None, [])]


def test_merge_unique_is_the_sorted_union() -> None:
    assert merge_unique(["a", "c", "d"], ["b", "c", "e"]) == ["a", "b", "c", "d", "e"]
    assert merge_unique([], ["a"]) == ["a"]


def test_keys_sorted_a_slice_at_a_time_come_out_in_order() -> None:
    keys = [f"k{(n * 7919) % 25_000:05d}" for n in range(25_000)]  # no order, > 2 slices
    assert len(keys) > SORT_SLICE and list(sorted_in_slices(keys)) == sorted(keys)
    assert list(sorted_in_slices([])) == []
