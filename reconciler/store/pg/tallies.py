"""The tallies of `store.tallies` kept by PostgreSQL triggers (PL/pgSQL functions).

The same tables (`state_counts`, `device_changes`, the one-row `change_seq`) and the same
triggers, written once in `store.tallies.TriggerSql` and spelled here in PostgreSQL's
words (`POSTGRES`: `dialect.SAME` for SQLite's `IS`, ...), so the readers' queries
(`tallies.COUNTS_SQL`, `STAMP_SQL`, `CHANGED_SQL`) are shared as they are. A trigger here
is a function and a `CREATE TRIGGER ... EXECUTE FUNCTION`; a conditional one carries its
condition in `WHEN (...)`. Part of schema migration 1 (`pg.schema`).
"""

from __future__ import annotations

from reconciler.store.pg.dialect import SAME
from reconciler.store.tallies import TriggerSql


def _trigger(name: str, event: str, body: str, condition: str) -> str:
    when = f"WHEN ({condition})" if condition else ""
    return (f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN\n{body}RETURN NULL;\nEND $$;\n"
            f"CREATE TRIGGER {name} AFTER {event} FOR EACH ROW {when} "
            f"EXECUTE FUNCTION {name}();\n")


POSTGRES = TriggerSql(same=SAME, differ="IS DISTINCT FROM", alias=" AS t", then=";\n",
                      end=";\n", join_where="", trigger=_trigger)


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

TRIGGERS = POSTGRES.triggers()
