"""Aggregates kept by SQLite triggers, so readers never scan every device per question.

`state_counts (collection_id, state, n)`: devices per collection and firmware state (''
when nothing is targeted), the state being `state_sql.STATE_SQL` of the device's rows.
`device_changes (collection_id, device_id, seq)`: the last change of each device's
observed rows (reports, progress) with an ever-growing `seq` (the one-row `change_seq`):
a collection's newest `seq` is its stamp, and the rows past a stamp are what changed
since. One row per (collection, device): bounded by the fleet. Desired rows (devices)
are not stamped: they change only when a snapshot is applied, which moves the store's
`desired_generation` readers compare too, and a trigger per row of a 100,000-device
commit would double its cost.

The triggers live in schema migration 8 (`MIGRATION`); the writer updates rows in place
(upserts) so a write that moves no state costs one counter and one stamp, and turns
recursive triggers on so an `INSERT OR REPLACE` (a delete, then an insert) would still
be counted both ways.
Read by `SqliteReader` (/status, /metrics, the API's body cache).
"""

from __future__ import annotations

from reconciler.store.state_sql import state_expr

_NO_STATE = "''"  # the key of devices with nothing targeted (STATE_SQL's NULL)


def _state(prefix: str | None, device: str) -> str:
    """The state expression with progress columns of `prefix` (NEW, OLD, p; None: the
    device has no progress row) and device columns of `device`."""
    state, target = ((f"{prefix}.state", f"{prefix}.target_image_id") if prefix
                     else ("NULL", "NULL"))
    expr = state_expr(state, target, f"{device}.target_image_id", f"{device}.current_image_id")
    return f"COALESCE({expr}, {_NO_STATE})"


def _bump(collection: str, state: str, delta: int, source: str) -> str:
    return (f"INSERT INTO state_counts (collection_id, state, n) "
            f"SELECT {collection}, {state}, {delta} {source} "
            "ON CONFLICT (collection_id, state) DO UPDATE SET n = n + excluded.n;")


def _touch(collection: str, device_id: str, source: str = "WHERE true") -> str:
    # The next seq of the one-row counter: larger than any before.
    return ("UPDATE change_seq SET n = n + 1; "
            f"INSERT INTO device_changes (collection_id, device_id, seq) "
            f"SELECT {collection}, {device_id}, (SELECT n FROM change_seq) {source} "
            "ON CONFLICT (collection_id, device_id) DO UPDATE SET seq = excluded.seq;")


def _trigger(name: str, event: str, body: str, when: str = "") -> str:
    return f"CREATE TRIGGER {name} AFTER {event} {when} BEGIN {body} END"


def _progress_triggers() -> list[str]:
    device = "FROM devices d WHERE d.device_id = {row}.device_id"
    moved = ("WHEN OLD.state IS NOT NEW.state "
             "OR OLD.target_image_id IS NOT NEW.target_image_id")
    return [
        _trigger("progress_added", "INSERT ON progress",
                 _bump("d.collection_id", _state(None, "d"), -1, device.format(row="NEW"))
                 + _bump("d.collection_id", _state("NEW", "d"), 1, device.format(row="NEW"))
                 + _touch("d.collection_id", "d.device_id", device.format(row="NEW"))),
        _trigger("progress_removed", "DELETE ON progress",
                 _bump("d.collection_id", _state("OLD", "d"), -1, device.format(row="OLD"))
                 + _bump("d.collection_id", _state(None, "d"), 1, device.format(row="OLD"))
                 + _touch("d.collection_id", "d.device_id", device.format(row="OLD"))),
        _trigger("progress_moved", "UPDATE OF state, target_image_id ON progress",
                 _bump("d.collection_id", _state("OLD", "d"), -1, device.format(row="OLD"))
                 + _bump("d.collection_id", _state("NEW", "d"), 1, device.format(row="NEW")),
                 when=f"FOR EACH ROW {moved}"),
        _trigger("progress_touched", "UPDATE ON progress",
                 _touch("d.collection_id", "d.device_id", device.format(row="NEW"))),
    ]


def _device_triggers() -> list[str]:
    # an upsert's SELECT after a join needs a WHERE (SQLite's parser reads ON otherwise)
    progress = ("FROM (SELECT {row}.device_id AS id) x "
                "LEFT JOIN progress p ON p.device_id = x.id WHERE true")
    moved = ("WHEN OLD.collection_id IS NOT NEW.collection_id "
             "OR OLD.target_image_id IS NOT NEW.target_image_id "
             "OR OLD.current_image_id IS NOT NEW.current_image_id")
    return [
        _trigger("devices_added", "INSERT ON devices",
                 _bump("NEW.collection_id", _state("p", "NEW"), 1, progress.format(row="NEW"))),
        _trigger("devices_removed", "DELETE ON devices",
                 _bump("OLD.collection_id", _state("p", "OLD"), -1, progress.format(row="OLD"))),
        _trigger("devices_moved", "UPDATE OF collection_id, target_image_id, current_image_id "
                 "ON devices",
                 _bump("OLD.collection_id", _state("p", "OLD"), -1, progress.format(row="OLD"))
                 + _bump("NEW.collection_id", _state("p", "NEW"), 1, progress.format(row="NEW")),
                 when=f"FOR EACH ROW {moved}"),
    ]


def _report_triggers() -> list[str]:
    device = "FROM devices d WHERE d.device_id = {row}.device_id"
    return [_trigger(f"reports_{name}", f"{event} ON reports",
                     _touch("d.collection_id", "d.device_id", device.format(row=row)))
            for name, event, row in (("added", "INSERT", "NEW"), ("removed", "DELETE", "OLD"),
                                     ("changed", "UPDATE", "NEW"))]


_TABLES = f"""
CREATE TABLE state_counts (
    collection_id TEXT NOT NULL, state TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (collection_id, state)) WITHOUT ROWID;
INSERT INTO state_counts (collection_id, state, n)
    SELECT d.collection_id, {_state("p", "d")} AS s, COUNT(*) FROM devices d
    LEFT JOIN progress p ON p.device_id = d.device_id GROUP BY d.collection_id, s;
CREATE TABLE device_changes (
    collection_id TEXT NOT NULL, device_id TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (collection_id, device_id)) WITHOUT ROWID;
CREATE INDEX device_changes_by_collection ON device_changes (collection_id, seq);
CREATE TABLE change_seq (n INTEGER NOT NULL);
INSERT INTO change_seq VALUES (1);
INSERT INTO device_changes (collection_id, device_id, seq)
    SELECT collection_id, device_id, 1 FROM devices;
"""

# Schema step 8 (schema.MIGRATIONS): generated here so the triggers and STATE_SQL share
# one expression; a later change to either is a new migration, never an edit of this one.
MIGRATION = _TABLES + "".join(
    f"{t};\n" for t in (*_progress_triggers(), *_device_triggers(), *_report_triggers()))

COUNTS_SQL = "SELECT collection_id, state, n FROM state_counts WHERE n != 0"
STAMP_SQL = "SELECT COALESCE(MAX(seq), 0) FROM device_changes WHERE collection_id = ?"
CHANGED_SQL = "SELECT device_id FROM device_changes WHERE collection_id = ? AND seq > ?"


def state_of(key: str) -> str | None:
    """A `state_counts.state` key as the state it stands for (None: nothing targeted)."""
    return key or None
