"""`SqliteReader`: the API's read-only view of the state file (`mode=ro` connection).

Every list is one indexed query: devices by (collection_id, device_id), usage by
(target_image_id, device_id) and (current_image_id, device_id), the collection's current
image by two ends of (collection_id, current_image_id). `version()` changes whenever any
writer commits, so callers may cache answers until it moves.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from reconciler.model.desired import FirmwareImage
from reconciler.model.observed import DeviceEvent
from reconciler.model.status import Condition, UpdateState
from reconciler.model.versions import image_order
from reconciler.store import codec, collection_status, tallies
from reconciler.store.event_log import EventFeed
from reconciler.store.json_lists import device_ids_json, device_rows_json, devices_json
from reconciler.store.pages import DeviceQuery, device_page
from reconciler.store.schema import SCHEMA_VERSION, SchemaError, user_version
from reconciler.store.state_sql import MESSAGE_SQL, STATE_SQL
from reconciler.store.views import (
    CollectionStatus,
    CollectionView,
    DevicePage,
    DeviceView,
    Usage,
)
from reconciler.store.writer import connect

_DEVICE_COLUMNS = f"""d.device_id, d.collection_id, d.tags, d.current_image_id,
    d.target_image_id, r.firmware_version, r.serial_number, r.model_number, r.manufacturer,
    {STATE_SQL}, {MESSAGE_SQL},
    CASE WHEN p.target_image_id IS d.target_image_id THEN p.drift END"""
_DEVICE_SQL = f"""SELECT {_DEVICE_COLUMNS}
    FROM devices d LEFT JOIN reports r ON r.device_id = d.device_id
    LEFT JOIN progress p ON p.device_id = d.device_id"""
_COLLECTION_SQL = "SELECT collection_id, name, management, target_image_id, tags FROM collections"
_IMAGE_SQL = "SELECT * FROM images"


def open_reader(path: Path) -> SqliteReader:
    """A read-only reader of a state file that `open_store` created and migrated."""
    if not path.exists():
        raise FileNotFoundError(f"no state file at {path}")
    conn = connect(path, read_only=True)
    found = user_version(conn)
    if found != SCHEMA_VERSION:
        conn.close()
        raise SchemaError(f"{path}: schema version {found}, this reader knows {SCHEMA_VERSION}")
    return SqliteReader(conn, connect(path, read_only=True))


class SqliteReader(EventFeed):
    """Read-only queries for the API. Build with `open_reader(path)`.

    Two connections: `bulk` renders the big JSON lists (tens of ms, callers may run them in
    a worker thread) so the quick queries and `version()` never wait behind one."""

    _conn: sqlite3.Connection  # EventFeed's connection, this engine's

    def __init__(self, conn: sqlite3.Connection, bulk: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._bulk = bulk
        self._bulk_lock = threading.Lock()

    def _rows(self, sql: str, args: Sequence[object] = ()) -> list[codec.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _one(self, sql: str, args: Sequence[object] = ()) -> codec.Row | None:
        with self._lock:
            row: codec.Row | None = self._conn.execute(sql, args).fetchone()
            return row

    def version(self) -> int:
        """Moves whenever another connection commits (SQLite's PRAGMA data_version)."""
        row = self._one("PRAGMA data_version")
        return int(row[0]) if row else 0

    def ping(self) -> bool:
        return self._one("SELECT 1") is not None

    # --- collections and images ----------------------------------------------------
    def collections(self) -> list[CollectionView]:
        rows = self._rows(_COLLECTION_SQL + " ORDER BY collection_id")
        return [self._collection(r) for r in rows]

    def collection(self, collection_id: str) -> CollectionView | None:
        row = self._one(_COLLECTION_SQL + " WHERE collection_id = ?", (collection_id,))
        return self._collection(row) if row else None

    def _collection(self, row: codec.Row) -> CollectionView:
        return CollectionView(collection_id=row[0], name=row[1],
                              management=codec.management_of(row[2]),
                              target_image_id=row[3], current_image_id=self._common(row[0]),
                              tags=codec.load_tags(row[4]))

    def _common(self, collection_id: str) -> str | None:
        """The image every device of the collection reports: both ends of the index agree
        (NULL sorts first, so a device without a current image shows at the low end)."""
        sql = ("SELECT current_image_id FROM devices WHERE collection_id = ? "
               "ORDER BY current_image_id {} LIMIT 1")
        low = self._one(sql.format("ASC"), (collection_id,))
        high = self._one(sql.format("DESC"), (collection_id,))
        if low is None or high is None or low[0] is None or low[0] != high[0]:
            return None
        return str(low[0])

    def images(self, collection_id: str) -> list[FirmwareImage]:
        """The collection's images in natural version order (`DesiredState.images_of`'s):
        SQL's ORDER BY would put "1.10.0" before "1.9.0"."""
        rows = self._rows(_IMAGE_SQL + " WHERE collection_id = ?", (collection_id,))
        return sorted((codec.image_from_row(r) for r in rows), key=image_order)

    def image(self, collection_id: str, image_id: str) -> FirmwareImage | None:
        row = self._one(_IMAGE_SQL + " WHERE image_id = ? AND collection_id = ?",
                        (image_id, collection_id))
        return codec.image_from_row(row) if row else None

    def usage(self, collection_id: str, image_id: str) -> Usage:
        """Devices of the collection targeting / running the image (a device may be in both)."""
        # An image belongs to one collection and targets/current images are only ever
        # derived within the device's own collection, so the (image, device) index alone
        # answers this without touching device rows. The caller checks the image exists.
        sql = "SELECT device_id FROM devices WHERE {} = ? ORDER BY device_id"
        args = (image_id,)
        targeted = [r[0] for r in self._rows(sql.format("target_image_id"), args)]
        current = [r[0] for r in self._rows(sql.format("current_image_id"), args)]
        return Usage(firmware_id=image_id, targeted=targeted, current=current)

    def usage_json(self, image_id: str) -> tuple[str, str]:
        """JSON arrays of the device ids targeting and running the image (the caller checks
        the image belongs to the collection asked about)."""
        with self._bulk_lock:
            # One read transaction, so both arrays come from the same commit.
            self._bulk.execute("BEGIN")
            try:
                return (device_ids_json(self._bulk, "target_image_id", image_id),
                        device_ids_json(self._bulk, "current_image_id", image_id))
            finally:
                self._bulk.execute("COMMIT")

    # --- devices ----------------------------------------------------------------------
    def devices(self, collection_id: str) -> list[DeviceView]:
        rows = self._rows(_DEVICE_SQL + " WHERE d.collection_id = ? ORDER BY d.device_id",
                          (collection_id,))
        return [_device(r) for r in rows]

    def devices_json(self, collection_id: str) -> str:
        """The collection's devices as a JSON array in the reference shape."""
        with self._bulk_lock:
            return devices_json(self._bulk, collection_id)

    def devices_json_rows(self, collection_id: str, ids: Sequence[str] | None = None
                          ) -> list[tuple[str, str]]:
        """(device id, JSON object) per device of the collection (of `ids` only, if
        given), in the shape and order of `devices_json`."""
        with self._bulk_lock:
            return device_rows_json(self._bulk, collection_id, ids)

    def device(self, collection_id: str, device_id: str) -> DeviceView | None:
        row = self._one(_DEVICE_SQL + " WHERE d.device_id = ? AND d.collection_id = ?",
                        (device_id, collection_id))
        return _device(row) if row else None

    def device_page(self, query: DeviceQuery) -> DevicePage:
        """One page of devices in device id order after `query.after`, filtered by
        collection, state and tag; bounded work whatever the filter (`pages.py`)."""
        with self._lock:
            page = device_page(self._conn, _DEVICE_COLUMNS, query)
        return DevicePage([_device(r) for r in page.rows], page.resume_after)

    def device_collection(self, device_id: str) -> str | None:
        row = self._one("SELECT collection_id FROM devices WHERE device_id = ?", (device_id,))
        return str(row[0]) if row else None

    # --- status -----------------------------------------------------------------------
    def applied_revision(self) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = 'applied_revision'")
        return str(row[0]) if row else None

    def desired_generation(self) -> int:
        """Grows with every applied snapshot (the desired rows may have changed)."""
        row = self._one("SELECT value FROM meta WHERE key = 'desired_generation'")
        return int(row[0]) if row else 0

    def source_status(self) -> dict[str, object]:
        return self._meta_json("source_status")

    def restart_status(self) -> dict[str, object]:
        """What the running controller restored when it started ({} before it wrote it)."""
        return self._meta_json("restart_status")

    def admission_status(self) -> dict[str, object]:
        """Undeclared endpoints the running server refused ({} before any)."""
        return self._meta_json("admission_status")

    def dtls_status(self) -> dict[str, object]:
        """The running CoAPs listener's counters ({} without one)."""
        return self._meta_json("dtls_status")

    def listeners(self) -> dict[str, object]:
        """The LwM2M listeners the running server serves ({} before it started)."""
        return self._meta_json("listeners")

    def credentials_status(self) -> dict[str, object]:
        """The running server's credentials file ({} without one)."""
        return self._meta_json("credentials_status")

    def notify_state(self) -> dict[str, object]:
        """What the notifier persisted with `SqliteStore.set_notify_state` ({} before)."""
        return self._meta_json("notify_state")

    def _meta_json(self, key: str) -> dict[str, object]:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        loaded = json.loads(row[0]) if row else {}
        return loaded if isinstance(loaded, dict) else {}

    def collection_statuses(self) -> list[CollectionStatus]:
        return [self._status(c) for c in self.collections()]

    def state_counts(self) -> list[tuple[str, str | None, int]]:
        """(collection, state, devices) for every non-empty pair, from the tallies the
        triggers keep: a few rows whatever the fleet's size."""
        return [(c, tallies.state_of(s), int(n)) for c, s, n in self._rows(tallies.COUNTS_SQL)]

    def change_stamp(self, collection_id: str) -> int:
        """Grows whenever a device row of the collection (or one that left it) changes."""
        row = self._one(tallies.STAMP_SQL, (collection_id,))
        return int(row[0]) if row else 0

    def changed_devices(self, collection_id: str, since: int) -> list[str]:
        """Ids of the collection's devices changed after stamp `since` (and of those that
        left it), for a caller that re-renders only those."""
        return [str(r[0]) for r in self._rows(tallies.CHANGED_SQL, (collection_id, since))]

    def _status(self, c: CollectionView) -> CollectionStatus:
        counts = [(tallies.state_of(s), n) for s, n in self._rows(
            "SELECT state, n FROM state_counts WHERE collection_id = ? AND n != 0",
            (c.collection_id,))]
        row = self._one("SELECT status, halt FROM collection_status WHERE collection_id = ?",
                        (c.collection_id,))
        rollout = json.loads(row[0]) if row else {}
        if isinstance(rollout, dict):
            rollout = collection_status.with_halt(rollout, row[1] if row else None)
        states = {s: n for s, n in counts if s is not None}
        return CollectionStatus(
            collection_id=c.collection_id, management=c.management,
            target_image_id=c.target_image_id, devices=sum(n for _, n in counts),
            counts=states, rollout=_live(rollout if isinstance(rollout, dict) else {}, states))

    def conditions(self, subject: str) -> list[Condition]:
        rows = self._rows("SELECT type, status, reason, message, last_transition, revision "
                          "FROM conditions WHERE subject = ? ORDER BY type", (subject,))
        return [codec.condition_from_row(r) for r in rows]

    def events(self, device_id: str, limit: int = 50) -> list[DeviceEvent]:
        """The newest `limit` events of the device, oldest first."""
        rows = self._rows("SELECT device_id, at, kind, message, revision FROM events "
                          "WHERE device_id = ? ORDER BY seq DESC LIMIT ?", (device_id, limit))
        return [codec.event_from_row(r) for r in reversed(rows)]

    def close(self) -> None:
        with self._lock, self._bulk_lock:
            self._conn.close()
            self._bulk.close()


def _live(rollout: dict[str, object], states: dict[str, int]) -> dict[str, object]:
    """The controller's rollout snapshot (flushed about once a second, tallied over every
    progress record whatever its target) with its per-device figures replaced by the ones
    of `states`, the same query's counts: one /status describes the same devices at the
    same moment. The gate's reason stays only while the gate is closed by these figures
    (halted, paused, or maxConcurrent in flight), never a stale "waiting for a slot"."""
    in_flight = sum(n for s, n in states.items() if UpdateState(s).in_flight)
    failed = sum(n for s, n in states.items() if UpdateState(s).terminal)
    live = {**rollout, "counts": dict(states), "inFlight": in_flight, "failed": failed}
    limit = rollout.get("maxConcurrent")
    full = isinstance(limit, int) and in_flight >= limit
    if not (rollout.get("halted") or rollout.get("paused") or full):
        live.pop("reason", None)
    return live


def _device(r: codec.Row) -> DeviceView:
    return DeviceView(device_id=r[0], collection_id=r[1], tags=codec.load_tags(r[2]),
                      current_image_id=r[3], target_image_id=r[4], firmware_version=r[5],
                      serial_number=r[6], model_number=r[7], manufacturer=r[8], state=r[9],
                      state_message=r[10] or None, drift=r[11])
