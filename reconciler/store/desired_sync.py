"""Materialise a DesiredState into the collections, images and devices tables by diff.

Pure part: `diff_rows` compares the rows a snapshot should leave behind with what is
stored, so a 100,000-device snapshot in which one target changed writes one row.
Effectful part: `apply_in_slices` walks each table in key order, `SLICE` keys per
transaction, so the writer is never held for long: the event loop's own writes (a
Register, a progress record) wait for one slice at most, never for a whole 200,000-device
commit. Called by `SqliteStore.apply_desired`, from a worker thread.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass

from reconciler.model.desired import DesiredState
from reconciler.store.codec import Row, collection_row, device_row, image_row
from reconciler.store.sqlconn import SqlConnection


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]  # the first is the primary key

    def select_sql(self) -> str:
        return f"SELECT {', '.join(self.columns)} FROM {self.name}"

    def upsert_sql(self) -> str:
        cols = ", ".join(self.columns)
        marks = ", ".join("?" for _ in self.columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in self.columns[1:])
        return (f"INSERT INTO {self.name} ({cols}) VALUES ({marks}) "
                f"ON CONFLICT ({self.columns[0]}) DO UPDATE SET {updates}")

    def delete_sql(self) -> str:
        return f"DELETE FROM {self.name} WHERE {self.columns[0]} = ?"


COLLECTIONS = Table("collections", ("collection_id", "name", "management",
                                    "target_image_id", "tags", "rollout"))
IMAGES = Table("images", ("image_id", "collection_id", "version", "filename", "sha256",
                          "length", "created", "path", "tags"))
DEVICES = Table("devices", ("device_id", "collection_id", "endpoint", "own_target_image_id",
                            "target_image_id", "current_image_id", "tags"))


@dataclass(frozen=True, slots=True)
class RowDiff:
    upserts: list[Row]
    deletes: list[tuple[str]]


def diff_rows(stored: Mapping[str, Row], wanted: Mapping[str, Row]) -> RowDiff:
    """Rows to write (new or changed) and keys to delete (gone from the snapshot)."""
    upserts = [row for key, row in wanted.items() if stored.get(key) != row]
    deletes = [(key,) for key in stored if key not in wanted]
    return RowDiff(upserts, deletes)


Transaction = Callable[[], AbstractContextManager[SqlConnection]]
SLICE = 500  # keys compared (and rows written) per transaction: ~20 ms of the writer
KEY_PAGE = 20_000  # stored keys listed per transaction
SORT_SLICE = 10_000  # keys per `sorted` call: milliseconds of the GIL each
PAUSE_EVERY = 50  # slices between two `pause()` calls: about a second of the writer


@dataclass(frozen=True, slots=True)
class KeyRange:
    """Keys in (after, upto]; None is unbounded on that side."""

    after: str | None
    upto: str | None

    def where(self, column: str) -> tuple[str, tuple[str, ...]]:
        clauses, args = [], []
        if self.after is not None:
            clauses.append(f"{column} > ?")
            args.append(self.after)
        if self.upto is not None:
            clauses.append(f"{column} <= ?")
            args.append(self.upto)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


# Rows wanted for the given keys of one slice, read inside that slice's transaction.
Build = Callable[[SqlConnection, KeyRange, list[str]], dict[str, Row]]


def apply_in_slices(tx: Transaction, desired: DesiredState,
                    pause: Callable[[], None] = lambda: None) -> int:
    """Bring the three tables to `desired`, one short transaction per slice; returns rows
    touched. A crash between slices leaves some rows of the new revision and some of the
    old: the caller records the applied revision only after the last slice, so a restart
    applies it again. `pause()` runs between two slices every `PAUSE_EVERY` slices (the
    writer's WAL catches up there: `checkpoint`)."""
    touched = sync_sliced(tx, COLLECTIONS, list(desired.collections),
                          lambda _c, _r, keys: {k: collection_row(desired.collections[k])
                                                for k in keys}, pause)
    touched += sync_sliced(tx, IMAGES, list(desired.images),
                           lambda _c, _r, keys: {k: image_row(desired.images[k])
                                                 for k in keys}, pause)

    def devices(conn: SqlConnection, keys: KeyRange, ids: list[str]) -> dict[str, Row]:
        # Read in the slice's transaction: put_report may change a version in between.
        reported = reported_versions(conn, keys)
        return {k: device_row(desired, desired.devices[k], reported) for k in ids}

    return touched + sync_sliced(tx, DEVICES, list(desired.devices), devices, pause)


def sync_sliced(tx: Transaction, table: Table, wanted: list[str], build: Build,
                pause: Callable[[], None] = lambda: None) -> int:
    """Walk the union of stored and wanted keys in order, `SLICE` at a time: each slice
    diffs the stored rows of its key range against the rows `build` wants there."""
    wanted_set = set(wanted)
    keys = merge_unique(sorted_in_slices(wanted), stored_keys(tx, table))
    touched = 0
    for number, (keys_range, chunk) in enumerate(slices(keys, SLICE)):
        if number and number % PAUSE_EVERY == 0:
            pause()
        with tx() as conn:
            where, args = keys_range.where(table.columns[0])
            stored = {row[0]: tuple(row)
                      for row in conn.execute(table.select_sql() + where, args)}
            rows = build(conn, keys_range, [k for k in chunk if k in wanted_set])
            touched += write_diff(conn, table, diff_rows(stored, rows))
    return touched


def merge_unique(first: Iterable[str], second: Iterable[str]) -> list[str]:
    """The sorted union of two sorted sequences. A Python loop rather than one sort of
    the union: a worker thread runs this, and a 200,000-key sort in C would hold the GIL
    (and so the event loop) for a tenth of a second or more."""
    merged: list[str] = []
    for key in heapq.merge(first, second):
        if not merged or merged[-1] != key:
            merged.append(key)
    return merged


def sorted_in_slices(keys: list[str]) -> Iterator[str]:
    """`keys` in order, sorted `SORT_SLICE` at a time and merged: one `sorted` of 200,000
    device ids (derived ids come in no order) held the GIL for 0.15-0.2 s."""
    return heapq.merge(*(sorted(keys[first:first + SORT_SLICE])
                         for first in range(0, len(keys), SORT_SLICE)))


def slices(keys: list[str], size: int) -> Iterator[tuple[KeyRange, list[str]]]:
    """Consecutive chunks of sorted `keys`, each with the key range it covers; the
    ranges together cover every key (the last one is unbounded above)."""
    after: str | None = None
    for first in range(0, max(len(keys), 1), size):
        chunk = keys[first:first + size]
        last = first + size >= len(keys)
        yield KeyRange(after, None if last else chunk[-1]), chunk
        after = chunk[-1] if chunk else None


def stored_keys(tx: Transaction, table: Table) -> list[str]:
    """Every primary key of `table`, listed a page per transaction."""
    key, keys = table.columns[0], []
    after: str | None = None
    while True:
        where, args = KeyRange(after, None).where(key)
        with tx() as conn:
            page = [row[0] for row in conn.execute(
                f"SELECT {key} FROM {table.name}{where} ORDER BY {key} LIMIT {KEY_PAGE}", args)]
        keys += page
        if len(page) < KEY_PAGE:
            return keys
        after = page[-1]


def write_diff(conn: SqlConnection, table: Table, diff: RowDiff) -> int:
    if diff.upserts:
        conn.executemany(table.upsert_sql(), diff.upserts)
    if diff.deletes:
        conn.executemany(table.delete_sql(), diff.deletes)
    return len(diff.upserts) + len(diff.deletes)


def reported_versions(conn: SqlConnection, keys: KeyRange) -> dict[str, str]:
    """Device id -> reported /3/0/3 for the devices in `keys`."""
    where, args = keys.where("device_id")
    rows = conn.execute("SELECT device_id, firmware_version FROM reports" + where +
                        (" AND" if where else " WHERE") + " firmware_version IS NOT NULL",
                        args)
    return {device_id: version for device_id, version in rows}
