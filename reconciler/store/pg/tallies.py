"""The tallies of `store.tallies` kept by PostgreSQL triggers (PL/pgSQL functions).

The same tables (`state_counts`, `device_changes`, the one-row `change_seq`), the same
events and the same state expression (`dialect.SAME` for SQLite's `IS`), so the readers'
queries (`tallies.COUNTS_SQL`, `STAMP_SQL`, `CHANGED_SQL`) are shared as they are. A
trigger here is a function and a `CREATE TRIGGER ... EXECUTE FUNCTION`; a conditional
one carries its condition in `WHEN (...)`. Part of schema migration 1 (`pg.schema`).
"""

from __future__ import annotations

from reconciler.store.pg.dialect import SAME
from reconciler.store.state_sql import state_expr

_NO_STATE = "''"


def _state(prefix: str | None, device: str) -> str:
    state, target = ((f"{prefix}.state", f"{prefix}.target_image_id") if prefix
                     else ("NULL", "NULL"))
    expr = state_expr(state, target, f"{device}.target_image_id",
                      f"{device}.current_image_id", same=SAME)
    return f"COALESCE({expr}, {_NO_STATE})"


def _bump(collection: str, state: str, delta: int, source: str) -> str:
    return (f"INSERT INTO state_counts AS t (collection_id, state, n) "
            f"SELECT {collection}, {state}, {delta} {source} "
            "ON CONFLICT (collection_id, state) DO UPDATE SET n = t.n + excluded.n;\n")


def _touch(collection: str, device_id: str, source: str) -> str:
    # The one-row counter, not a sequence: a stamp then grows in commit order, as the
    # API's cache (`changed_devices` since a stamp it saw) needs.
    return ("UPDATE change_seq SET n = n + 1;\n"
            "INSERT INTO device_changes AS t (collection_id, device_id, seq) "
            f"SELECT {collection}, {device_id}, (SELECT n FROM change_seq) {source} "
            "ON CONFLICT (collection_id, device_id) DO UPDATE SET seq = excluded.seq;\n")


def _trigger(name: str, event: str, body: str, when: str = "") -> str:
    condition = f"WHEN ({when})" if when else ""
    return (f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN\n{body}RETURN NULL;\nEND $$;\n"
            f"CREATE TRIGGER {name} AFTER {event} FOR EACH ROW {condition} "
            f"EXECUTE FUNCTION {name}();\n")


def _progress_triggers() -> list[str]:
    device = "FROM devices d WHERE d.device_id = {row}.device_id"
    moved = ("OLD.state IS DISTINCT FROM NEW.state "
             "OR OLD.target_image_id IS DISTINCT FROM NEW.target_image_id")
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
                 when=moved),
        _trigger("progress_touched", "UPDATE ON progress",
                 _touch("d.collection_id", "d.device_id", device.format(row="NEW"))),
    ]


def _device_triggers() -> list[str]:
    progress = ("FROM (SELECT {row}.device_id AS id) x "
                "LEFT JOIN progress p ON p.device_id = x.id")
    moved = ("OLD.collection_id IS DISTINCT FROM NEW.collection_id "
             "OR OLD.target_image_id IS DISTINCT FROM NEW.target_image_id "
             "OR OLD.current_image_id IS DISTINCT FROM NEW.current_image_id")
    return [
        _trigger("devices_added", "INSERT ON devices",
                 _bump("NEW.collection_id", _state("p", "NEW"), 1, progress.format(row="NEW"))),
        _trigger("devices_removed", "DELETE ON devices",
                 _bump("OLD.collection_id", _state("p", "OLD"), -1, progress.format(row="OLD"))),
        _trigger("devices_moved", "UPDATE OF collection_id, target_image_id, current_image_id "
                 "ON devices",
                 _bump("OLD.collection_id", _state("p", "OLD"), -1, progress.format(row="OLD"))
                 + _bump("NEW.collection_id", _state("p", "NEW"), 1, progress.format(row="NEW")),
                 when=moved),
    ]


def _report_triggers() -> list[str]:
    device = "FROM devices d WHERE d.device_id = {row}.device_id"
    return [_trigger(f"reports_{name}", f"{event} ON reports",
                     _touch("d.collection_id", "d.device_id", device.format(row=row)))
            for name, event, row in (("added", "INSERT", "NEW"), ("removed", "DELETE", "OLD"),
                                     ("changed", "UPDATE", "NEW"))]


TABLES = """
CREATE TABLE state_counts (
    collection_id TEXT COLLATE "C" NOT NULL, state TEXT COLLATE "C" NOT NULL,
    n BIGINT NOT NULL, PRIMARY KEY (collection_id, state));
CREATE TABLE device_changes (
    collection_id TEXT COLLATE "C" NOT NULL, device_id TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL, PRIMARY KEY (collection_id, device_id));
CREATE INDEX device_changes_by_collection ON device_changes (collection_id, seq);
CREATE TABLE change_seq (n BIGINT NOT NULL);
INSERT INTO change_seq VALUES (1);
"""

TRIGGERS = "".join((*_progress_triggers(), *_device_triggers(), *_report_triggers()))
