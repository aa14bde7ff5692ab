"""Materialise a DesiredState into the collections, images and devices tables by diff.

Pure part: `desired_rows` builds the rows a snapshot should leave behind and `diff_rows`
compares them with what is stored, so a 100,000-device snapshot in which one target
changed writes one row. Effectful part: `sync_table` runs the diff inside the caller's
transaction with `executemany`. Called by `SqliteStore.apply_desired` only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.model.desired import DesiredState
from reconciler.store.codec import Row, collection_row, device_row, image_row


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


def desired_rows(desired: DesiredState, reported: Mapping[str, str]) -> dict[Table, dict[str, Row]]:
    """Every row the snapshot should leave, keyed by table then primary key.

    `reported` maps device id -> reported /3/0/3, to derive each device's current image."""
    return {
        COLLECTIONS: {k: collection_row(c) for k, c in desired.collections.items()},
        IMAGES: {k: image_row(i) for k, i in desired.images.items()},
        DEVICES: {k: device_row(desired, d, reported) for k, d in desired.devices.items()},
    }


def sync_table(conn: sqlite3.Connection, table: Table, wanted: Mapping[str, Row]) -> int:
    """Bring `table` to `wanted` inside the open transaction; returns rows touched."""
    stored = {row[0]: tuple(row) for row in conn.execute(table.select_sql())}
    diff = diff_rows(stored, wanted)
    if diff.upserts:
        conn.executemany(table.upsert_sql(), diff.upserts)
    if diff.deletes:
        conn.executemany(table.delete_sql(), diff.deletes)
    return len(diff.upserts) + len(diff.deletes)


def reported_versions(conn: sqlite3.Connection) -> dict[str, str]:
    rows = conn.execute(
        "SELECT device_id, firmware_version FROM reports WHERE firmware_version IS NOT NULL")
    return {device_id: version for device_id, version in rows}
