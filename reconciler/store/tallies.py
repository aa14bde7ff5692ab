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
be counted both ways. What the triggers do is written once (`TriggerSql`); PostgreSQL's
spelling of them is in `store.pg.tallies`.
Read by `SqliteReader` (/status, /metrics, the API's body cache).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reconciler.store.state_sql import state_expr

_NO_STATE = "''"  # the key of devices with nothing targeted (STATE_SQL's NULL)


@dataclass(frozen=True, slots=True)
class TriggerSql:
    """How one engine spells the triggers; what they do is written once, below.
    `store.pg.tallies` has PostgreSQL's, `SQLITE` is SQLite's."""

    same: str  # null-safe equality (state_sql.state_expr)
    differ: str  # null-safe inequality
    alias: str  # an upsert's target table alias, if the engine needs one to name it
    then: str  # between two statements of one trigger body
    end: str  # after the last statement of a step
    join_where: str  # after a join in an upsert's SELECT
    trigger: Callable[[str, str, str, str], str]  # (name, event, body, condition)

    def state(self, prefix: str | None, device: str) -> str:
        """The state expression with progress columns of `prefix` (NEW, OLD, p; None:
        the device has no progress row) and device columns of `device`."""
        state, target = ((f"{prefix}.state", f"{prefix}.target_image_id") if prefix
                         else ("NULL", "NULL"))
        expr = state_expr(state, target, f"{device}.target_image_id",
                          f"{device}.current_image_id", same=self.same)
        return f"COALESCE({expr}, {_NO_STATE})"

    def bump(self, collection: str, state: str, delta: int, source: str) -> str:
        n = "t.n" if self.alias else "n"
        return (f"INSERT INTO state_counts{self.alias} (collection_id, state, n) "
                f"SELECT {collection}, {state}, {delta} {source} "
                f"ON CONFLICT (collection_id, state) DO UPDATE SET n = {n} + excluded.n"
                f"{self.end}")

    def touch(self, collection: str, device_id: str, source: str) -> str:
        # The next seq of the one-row counter (not a sequence): larger than any before,
        # so a stamp grows in commit order as the API's cache (`changed_devices`) needs.
        return (f"UPDATE change_seq SET n = n + 1{self.then}"
                f"INSERT INTO device_changes{self.alias} (collection_id, device_id, seq) "
                f"SELECT {collection}, {device_id}, (SELECT n FROM change_seq) {source} "
                f"ON CONFLICT (collection_id, device_id) DO UPDATE SET seq = excluded.seq"
                f"{self.end}")

    def triggers(self) -> str:
        """Every trigger of the tallies, in this engine's words."""
        return "".join((*_progress_triggers(self), *_device_triggers(self),
                        *_report_triggers(self)))


def _progress_triggers(sql: TriggerSql) -> list[str]:
    device = "FROM devices d WHERE d.device_id = {row}.device_id"
    moved = (f"OLD.state {sql.differ} NEW.state "
             f"OR OLD.target_image_id {sql.differ} NEW.target_image_id")
    return [
        sql.trigger("progress_added", "INSERT ON progress",
                    sql.bump("d.collection_id", sql.state(None, "d"), -1,
                             device.format(row="NEW"))
                    + sql.bump("d.collection_id", sql.state("NEW", "d"), 1,
                               device.format(row="NEW"))
                    + sql.touch("d.collection_id", "d.device_id", device.format(row="NEW")),
                    ""),
        sql.trigger("progress_removed", "DELETE ON progress",
                    sql.bump("d.collection_id", sql.state("OLD", "d"), -1,
                             device.format(row="OLD"))
                    + sql.bump("d.collection_id", sql.state(None, "d"), 1,
                               device.format(row="OLD"))
                    + sql.touch("d.collection_id", "d.device_id", device.format(row="OLD")),
                    ""),
        sql.trigger("progress_moved", "UPDATE OF state, target_image_id ON progress",
                    sql.bump("d.collection_id", sql.state("OLD", "d"), -1,
                             device.format(row="OLD"))
                    + sql.bump("d.collection_id", sql.state("NEW", "d"), 1,
                               device.format(row="NEW")),
                    moved),
        sql.trigger("progress_touched", "UPDATE ON progress",
                    sql.touch("d.collection_id", "d.device_id", device.format(row="NEW")), ""),
    ]


def _device_triggers(sql: TriggerSql) -> list[str]:
    # SQLite's parser needs a WHERE after the join (it would read the upsert's ON otherwise)
    progress = ("FROM (SELECT {row}.device_id AS id) x "
                "LEFT JOIN progress p ON p.device_id = x.id" + sql.join_where)
    moved = (f"OLD.collection_id {sql.differ} NEW.collection_id "
             f"OR OLD.target_image_id {sql.differ} NEW.target_image_id "
             f"OR OLD.current_image_id {sql.differ} NEW.current_image_id")
    return [
        sql.trigger("devices_added", "INSERT ON devices",
                    sql.bump("NEW.collection_id", sql.state("p", "NEW"), 1,
                             progress.format(row="NEW")), ""),
        sql.trigger("devices_removed", "DELETE ON devices",
                    sql.bump("OLD.collection_id", sql.state("p", "OLD"), -1,
                             progress.format(row="OLD")), ""),
        sql.trigger("devices_moved", "UPDATE OF collection_id, target_image_id, "
                    "current_image_id ON devices",
                    sql.bump("OLD.collection_id", sql.state("p", "OLD"), -1,
                             progress.format(row="OLD"))
                    + sql.bump("NEW.collection_id", sql.state("p", "NEW"), 1,
                               progress.format(row="NEW")),
                    moved),
    ]


def _report_triggers(sql: TriggerSql) -> list[str]:
    device = "FROM devices d WHERE d.device_id = {row}.device_id"
    return [sql.trigger(f"reports_{name}", f"{event} ON reports",
                        sql.touch("d.collection_id", "d.device_id", device.format(row=row)), "")
            for name, event, row in (("added", "INSERT", "NEW"), ("removed", "DELETE", "OLD"),
                                     ("changed", "UPDATE", "NEW"))]


def _sqlite_trigger(name: str, event: str, body: str, condition: str) -> str:
    when = f"FOR EACH ROW WHEN {condition}" if condition else ""
    return f"CREATE TRIGGER {name} AFTER {event} {when} BEGIN {body} END;\n"


SQLITE = TriggerSql(same="IS", differ="IS NOT", alias="", then="; ", end=";",
                    join_where=" WHERE true", trigger=_sqlite_trigger)


_TABLES = f"""
CREATE TABLE state_counts (
    collection_id TEXT NOT NULL, state TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (collection_id, state)) WITHOUT ROWID;
INSERT INTO state_counts (collection_id, state, n)
    SELECT d.collection_id, {SQLITE.state("p", "d")} AS s, COUNT(*) FROM devices d
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
MIGRATION = _TABLES + SQLITE.triggers()

COUNTS_SQL = "SELECT collection_id, state, n FROM state_counts WHERE n != 0"
STAMP_SQL = "SELECT COALESCE(MAX(seq), 0) FROM device_changes WHERE collection_id = ?"
CHANGED_SQL = "SELECT device_id FROM device_changes WHERE collection_id = ? AND seq > ?"


def state_of(key: str) -> str | None:
    """A `state_counts.state` key as the state it stands for (None: nothing targeted)."""
    return key or None
