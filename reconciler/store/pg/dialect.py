"""The SQL that differs between the engines, in PostgreSQL's words.

The reference's `firmware.state` (`state_sql.state_expr` with PostgreSQL's null-safe
equality) and `stateMessage` (the backoff's end formatted by `to_char` where SQLite has
`strftime`), the device columns the reader shows, and the API's two big JSON lists built
by the server (`json_build_object` / `json_strip_nulls` do what SQLite's `json_object` /
`json_patch` do). Used by `store.pg.reader`, `store.pg.pages` and `store.pg.tallies`.
"""

from __future__ import annotations

from reconciler.store.state_sql import state_expr

SAME = "IS NOT DISTINCT FROM"  # SQLite's `IS` between two values
STATE_SQL = state_expr("p.state", "p.target_image_id", "d.target_image_id",
                       "d.current_image_id", same=SAME)
MESSAGE_SQL = f"""CASE WHEN p.target_image_id {SAME} d.target_image_id AND p.message != ''
    THEN p.message || CASE WHEN p.next_attempt_at IS NULL THEN ''
        ELSE ' (next attempt at ' || to_char(to_timestamp(p.next_attempt_at)
            AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || ')' END END"""

DEVICE_COLUMNS = f"""d.device_id, d.collection_id, d.tags, d.current_image_id,
    d.target_image_id, r.firmware_version, r.serial_number, r.model_number, r.manufacturer,
    {STATE_SQL}, {MESSAGE_SQL},
    CASE WHEN p.target_image_id {SAME} d.target_image_id THEN p.drift END"""
FROM_DEVICES = """FROM devices d LEFT JOIN reports r ON r.device_id = d.device_id
    LEFT JOIN progress p ON p.device_id = d.device_id"""
DEVICE_SQL = f"SELECT {DEVICE_COLUMNS} {FROM_DEVICES}"

# One device in the reference shape, compact, NULL members left out (as json_lists.py).
_DEVICE_OBJECT = f"""json_strip_nulls(json_build_object(
        'deviceId', d.device_id, 'collectionId', d.collection_id, 'tags', d.tags::json,
        'firmware', json_build_object(
            'currentFirmwareId', d.current_image_id, 'targetFirmwareId', d.target_image_id,
            'firmwareVersion', r.firmware_version, 'serialNumber', r.serial_number,
            'modelNumber', r.model_number, 'manufacturer', r.manufacturer,
            'state', {STATE_SQL},
            'stateMessage', {MESSAGE_SQL})))::text"""
DEVICES_JSON = f"""SELECT '[' || COALESCE(string_agg(j, ',' ORDER BY id), '') || ']' FROM (
    SELECT d.device_id AS id, {_DEVICE_OBJECT} AS j {FROM_DEVICES}
    WHERE d.collection_id = ?) x"""
DEVICE_ROWS = f"SELECT d.device_id, {_DEVICE_OBJECT} {FROM_DEVICES} WHERE d.collection_id = ?"


def ids_json(column: str) -> str:
    """A JSON array of the ids of devices whose `column` is the argument, compact and in
    id order, as SQLite's json_group_array gives it."""
    return (f"(SELECT '[' || COALESCE(string_agg(to_json(device_id)::text, ',' "
            f"ORDER BY device_id), '') || ']' FROM devices WHERE {column} = ?)")


# Both arrays in one statement: one snapshot, so they come from the same commit.
USAGE_JSON = f"SELECT {ids_json('target_image_id')}, {ids_json('current_image_id')}"
