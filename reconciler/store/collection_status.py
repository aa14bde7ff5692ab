"""The collection status row's SQL: which of several nodes' writes of one collection's
rollout status stands, and the halt that outlives a lagging node's write.

Every node writes the status from its own rollout index, which counts the other nodes'
devices as far as its progress feed has read (`cluster.progress_feed`), and a feed may
lag by a second: a node that had not yet read another node's failures wrote "not
halted" over that node's "halted". So a node's write carries its feed position for the
collection (`stamp`, a `device_changes` sequence number, the same counter on every
node) and the revision it computed the status from, and replaces the stored one only if
it is not older: a status of the applied revision (`meta.applied_revision`) beats one of
any other, and within that, the higher stamp wins (ties: the later write). A halt is
kept apart from the status (`halt`, its reason) and sticks for the revision it was seen
in: a write that is refused as older still records its halt, and only a status of
another revision lifts it, since a halted rollout resumes through git (a commit that
raises `retry`, changes the target or the threshold). So once any node has seen the
halt, the API and `/metrics` of every node show it.

A write without a stamp (one node, no feed: SQLite, or PostgreSQL without `--node-id`)
replaces the row as it is, halt included. SQL for both engines; the writer
(`SqliteStore.put_collection_status`) runs it, the reader overlays `halt`.

The write that records a halt (or lifts it) also appends a `rollout` event to the log in
the same transaction (`write`): a collection's event, with an empty
`device_id`, so `/events`, `fota status --watch`, the dashboard and the notifiers learn of
it at once instead of at the stream's next keepalive.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.store.sqlconn import SqlConnection

REPLACE = ("INSERT INTO collection_status (collection_id, status, revision, stamp, halt) "
           "VALUES (?, ?, ?, NULL, ?) ON CONFLICT (collection_id) DO UPDATE SET "
           "status = excluded.status, revision = excluded.revision, stamp = NULL, "
           "halt = excluded.halt")


def _rank(row: str) -> str:
    """1 for a status of the applied revision, else 0: the first key of the order."""
    return (f"CASE WHEN {row}.revision = (SELECT value FROM meta "
            "WHERE key = 'applied_revision') THEN 1 ELSE 0 END")


# A row without a stamp was written by a node without a feed (or before the columns
# existed): any stamped write replaces it.
_NEWER = (f"(collection_status.stamp IS NULL OR ({_rank('excluded')}, excluded.stamp) >= "
          f"({_rank('collection_status')}, collection_status.stamp))")


def _keep_newer(column: str) -> str:
    return (f"{column} = CASE WHEN {_NEWER} THEN excluded.{column} "
            f"ELSE collection_status.{column} END")


# Every SET expression sees the row as it was: the halt's rule reads the old revision.
ORDERED = (
    "INSERT INTO collection_status (collection_id, status, revision, stamp, halt) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (collection_id) DO UPDATE SET "
    "halt = CASE WHEN excluded.revision = collection_status.revision "
    "THEN COALESCE(collection_status.halt, excluded.halt) "
    f"WHEN {_NEWER} THEN excluded.halt ELSE collection_status.halt END, "
    + ", ".join(_keep_newer(c) for c in ("status", "revision", "stamp")))


def halt_of(status: Mapping[str, object]) -> str | None:
    """The halt a status reports (its reason), or None."""
    if not status.get("halted"):
        return None
    reason = status.get("reason") or status.get("halt_reason")
    return str(reason) if reason else "halted"


def with_halt(rollout: dict[str, object], halt: str | None) -> dict[str, object]:
    """The stored status with the revision's halt over it (a reader's view)."""
    if halt is None or rollout.get("halted"):
        return rollout
    return {**rollout, "halted": True, "reason": halt}


ROLLOUT_EVENT = "rollout"  # the kind of a collection's halt and resume events
# Takes the row's lock before the halt is read (PostgreSQL; SQLite's one writer needs
# none): another node's write of the same collection waits for this transaction, so the
# halt read next is the one this write changes and only one node appends the event. The
# collection's first write has no row to lock yet, so this inserts one (a placeholder the
# status write below replaces in the same transaction): a second node's insert of the
# same key waits on the unique index until the first commits, then takes the committed
# row's lock. A no-op update of the row (an UPDATE of no row locks nothing) let two
# nodes both read "no halt" and both append the first halt's event.
_LOCK = ("INSERT INTO collection_status (collection_id, status) VALUES (?, '{}') "
         "ON CONFLICT (collection_id) DO UPDATE SET halt = collection_status.halt")
_HALT = "SELECT halt FROM collection_status WHERE collection_id = ?"
_INSERT_EVENT = ("INSERT INTO events (device_id, at, kind, message, revision, collection_id) "
                 f"VALUES ('', ?, '{ROLLOUT_EVENT}', ?, ?, ?)")


def write(conn: SqlConnection, collection_id: str, status: str, revision: str | None,
          halt: str | None, *, stamp: int | None, at: float) -> bool:
    """The status write, in the caller's transaction (`SqliteStore.put_collection_status`):
    the row locked, the status stored (`REPLACE` without a stamp, else `ORDERED`), and the
    event of a halt it recorded or lifted appended. True when one was appended (the
    writer then wakes the event log's readers)."""
    conn.execute(_LOCK, (collection_id,))
    before = stored_halt(conn, collection_id)
    if stamp is None:
        conn.execute(REPLACE, (collection_id, status, revision, halt))
    else:
        conn.execute(ORDERED, (collection_id, status, revision, stamp, halt))
    message = halt_message(before, stored_halt(conn, collection_id))
    if message is None:
        return False
    conn.execute(_INSERT_EVENT, (at, message, revision or "", collection_id))
    return True


def stored_halt(conn: SqlConnection, collection_id: str) -> str | None:
    """The halt stored for the collection (None: not halted, or no row yet)."""
    row = conn.execute(_HALT, (collection_id,)).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def halt_message(before: str | None, after: str | None) -> str | None:
    """The event a status write means: `rollout halted: ...` when a halt was recorded,
    `rollout resumed: ...` when one was lifted, None when neither (a halt whose reason
    changed is the same halt)."""
    if before is None and after is not None:
        return after if after.startswith("rollout halted") else f"rollout halted: {after}"
    if before is not None and after is None:
        return f"rollout resumed: no longer halted ({before})"
    return None
