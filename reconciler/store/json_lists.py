"""The API's two big lists rendered to JSON text inside SQLite (its C JSON functions).

A 10,000-device list or a 100,000-id usage list costs a Python object per row when
fetched row by row; building the JSON array in one aggregate query is 2-3x faster, which
is what keeps a fresh render (after any controller commit) quick. The device objects have
the reference shape, with the same absent-key rule as `reconciler.api.render.device`
(json_patch onto '{}' drops the NULL members); `device_rows_json` gives the same objects
one per device, for a caller that re-renders only the devices that changed. Called by
`SqliteReader` only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from reconciler.store.state_sql import MESSAGE_SQL, STATE_SQL

_DEVICE_OBJECT = f"""json_patch('{{}}', json_object(
        'deviceId', d.device_id, 'collectionId', d.collection_id, 'tags', json(d.tags),
        'firmware', json_object(
            'currentFirmwareId', d.current_image_id, 'targetFirmwareId', d.target_image_id,
            'firmwareVersion', r.firmware_version, 'serialNumber', r.serial_number,
            'modelNumber', r.model_number, 'manufacturer', r.manufacturer,
            'state', {STATE_SQL},
            'stateMessage', {MESSAGE_SQL})))"""
_FROM = """FROM devices d LEFT JOIN reports r ON r.device_id = d.device_id
    LEFT JOIN progress p ON p.device_id = d.device_id"""
_DEVICES_JSON = f"""SELECT json_group_array(json(j)) FROM (
    SELECT {_DEVICE_OBJECT} AS j {_FROM} WHERE d.collection_id = ? ORDER BY d.device_id)"""
_DEVICE_ROWS = f"SELECT d.device_id, {_DEVICE_OBJECT} {_FROM} WHERE d.collection_id = ?"

# Served by the (image, device_id) indices alone: no device row is read.
_IDS_JSON = {
    column: f"""SELECT json_group_array(device_id) FROM (
        SELECT device_id FROM devices WHERE {column} = ? ORDER BY device_id)"""
    for column in ("target_image_id", "current_image_id")
}


def devices_json(conn: sqlite3.Connection, collection_id: str) -> str:
    """A JSON array of the collection's devices in the reference shape, by device id."""
    return _scalar(conn, _DEVICES_JSON, collection_id)


def device_rows_json(conn: sqlite3.Connection, collection_id: str,
                     ids: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(device id, its JSON object as in `devices_json`) of the collection's devices, by
    device id; only those of `ids` when given (ids of other collections are skipped)."""
    if ids is None:
        rows = conn.execute(_DEVICE_ROWS + " ORDER BY d.device_id", (collection_id,))
    else:
        rows = conn.execute(_DEVICE_ROWS + " AND d.device_id IN (SELECT value FROM "
                            "json_each(?))", (collection_id, json.dumps(list(ids))))
    return [(str(r[0]), str(r[1])) for r in rows]


def device_ids_json(conn: sqlite3.Connection, column: str, image_id: str) -> str:
    """A JSON array of the ids of devices whose `column` (target/current image) is it."""
    return _scalar(conn, _IDS_JSON[column], image_id)


def _scalar(conn: sqlite3.Connection, sql: str, arg: str) -> str:
    row = conn.execute(sql, (arg,)).fetchone()
    return str(row[0]) if row and row[0] is not None else "[]"
