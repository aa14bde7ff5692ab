"""`SqliteStore`: the one writer of the state file (the controller's persistence).

Every public method is one transaction (BEGIN IMMEDIATE ... COMMIT), so a `kill -9` at any
moment leaves either all of a call or none of it; WAL with synchronous=NORMAL keeps
committed transactions across a process crash, and a `durable` write (the one recording
that Execute is about to be sent) is synced to disk with synchronous=FULL, so not even a
power cut can make the controller forget it and execute the same download twice.
Thread safe through one lock, since the controller may call it from its event loop and
from worker threads.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from reconciler.errors import NoSlot, NotOwner, StateFileInUse
from reconciler.model.cluster import Fence, SlotClaim
from reconciler.model.desired import DesiredState
from reconciler.model.lwm2m import (
    NO_FORMATS,
    ContentFormats,
    FirmwareOffer,
    PushPosition,
    Registration,
)
from reconciler.model.observed import DeviceEvent, DeviceProgress, DeviceReport
from reconciler.model.status import Condition, UpdateState
from reconciler.store import codec, collection_status
from reconciler.store.checkpoint import Checkpointer
from reconciler.store.desired_sync import apply_in_slices
from reconciler.store.event_log import EventFeed, EventHub
from reconciler.store.fixed_in import padded_chunks
from reconciler.store.retention import EventRetention, Pruned, prune
from reconciler.store.schema import migrate
from reconciler.store.sqlconn import SqlConnection

# The registration's own columns; an upsert keeps the row's owner and epoch (a Register
# moves them in `claim_registration`, an Update never does).
_REG_COLUMNS = ("endpoint", "registration_id", "host", "port", "lifetime", "lwm2m_version",
                "binding", "queue_mode", "object_links", "registered_at", "updated_at",
                "announced_format", "read_format", "secured")
_REG_SELECT = ", ".join(_REG_COLUMNS)  # the codec's row: these columns in this order
_UPSERT_REGISTRATION = (
    f"INSERT INTO registrations ({', '.join(_REG_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_REG_COLUMNS))}) ON CONFLICT (endpoint) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _REG_COLUMNS[1:]))
# An Update or a De-register at a node that no longer owns the device changes nothing.
_MINE = "(registrations.owner IS NULL OR registrations.owner = ?)"
_LIVE = "updated_at + lifetime > ?"  # a registration's expiry, as Registration.expires_at
_DELETE_EXPIRED_OFFERS = ("DELETE FROM offers WHERE token IN "
                          "(SELECT token FROM offers WHERE expires_at <= ? LIMIT ?)")
_SLICE = 1000  # rows per transaction of a bulk delete
REPORTS_AT_ONCE = 500  # ids per query of `reports`: well under SQLite's variable limit
IN_FLIGHT = tuple(s.value for s in UpdateState if s.in_flight)  # what holds a slot
# The event's collection is the device's at the time of writing (the feed's filter).
_INSERT_EVENT = """INSERT INTO events (device_id, at, kind, message, revision, collection_id)
    VALUES (?,?,?,?,?, (SELECT collection_id FROM devices WHERE device_id = ?))"""
# An upsert after the subject's DELETE: on a shared database another node may write the
# same subject's conditions between the two (read committed; a plain INSERT then fails).
_INSERT_CONDITION = ("INSERT INTO conditions VALUES (?,?,?,?,?,?,?) ON CONFLICT (subject, "
                     "type) DO UPDATE SET status = excluded.status, reason = "
                     "excluded.reason, message = excluded.message, last_transition = "
                     "excluded.last_transition, revision = excluded.revision")
# The endpoint's previous offer is deleted first; a token is unique, so the conflict
# clause only keeps a replayed put idempotent.
_INSERT_OFFER = ("INSERT INTO offers VALUES (?,?,?,?) ON CONFLICT (token) DO UPDATE SET "
                 "endpoint = excluded.endpoint, image_id = excluded.image_id, "
                 "expires_at = excluded.expires_at")
_UPSERT_PUSH_POSITION = (
    "INSERT INTO push_positions VALUES (?,?,?,?,?,?,?) ON CONFLICT (endpoint) DO UPDATE "
    "SET image_id = excluded.image_id, digest = excluded.digest, size = excluded.size, "
    "szx = excluded.szx, acknowledged = excluded.acknowledged, at = excluded.at")
# The device's current image: the image of its collection whose version equals the
# reported /3/0/3 (trimmed by the caller), else NULL.
_SET_CURRENT = """UPDATE devices SET current_image_id = (
    SELECT image_id FROM images
    WHERE images.collection_id = devices.collection_id AND images.version = ?)
    WHERE device_id = ?"""


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN ourselves)."""
    if read_only:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        # INSERT OR REPLACE deletes then inserts: the tallies' delete triggers must see it
        conn.execute("PRAGMA recursive_triggers = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def open_store(path: Path) -> SqliteStore:
    """Create (or open) the state file, migrate it and return its writer.

    Raises StateFileInUse while another writer holds the file, by whatever name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = _lock_exclusively(path)
    conn: sqlite3.Connection | None = None
    try:
        # The resolved name: SQLite names the WAL after the path it was given, and the
        # API's reader must find the same WAL.
        conn = connect(path.resolve())
        migrate(conn)
    except BaseException:
        if conn is not None:
            conn.close()
        os.close(lock)
        raise
    return SqliteStore(conn, lock)


def _lock_exclusively(path: Path) -> int:
    """An exclusive flock on the database file itself, held for the writer's lifetime:
    one writer per state file, so two reconcilers never drive the same devices. The lock
    belongs to the file (its inode), not to a name, so a symlink or a hard link to a
    state file in use is refused too (a second writer through a hard link would give one
    database two WALs, which corrupts it). flock and SQLite's own POSIX byte-range locks
    are independent on Linux; the descriptor stays open until after SQLite closes (a
    close would drop SQLite's POSIX locks). The kernel drops the lock when the process
    dies, so a kill -9 never leaves a stale lock behind."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # an empty file is an empty database
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateFileInUse(f"{path} is in use by another fota process") from None
    return fd


class Checkpoints(Protocol):
    """What the writer asks of `checkpoint.Checkpointer` (PostgreSQL has no WAL of ours
    to keep small: `store.pg.writer` gives a no-op)."""

    def committed(self) -> None: ...
    def catch_up(self) -> None: ...
    def close(self) -> None: ...


class SqliteStore(EventFeed):
    """The writer. Build with `open_store(path)`."""

    def __init__(self, conn: SqlConnection, file_lock: int | None = None) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._file_lock = file_lock
        self._checkpointer, self._reads = self._side_parts(conn)
        self._read_lock = threading.Lock()
        # Readers in this process (the API's /events, notifiers) await this instead of
        # polling: published after every commit that appended events.
        self.event_hub = EventHub()
        # Upserts, not INSERT OR REPLACE: an update fires the tallies' update triggers,
        # which skip rows whose state did not move (a replace is a delete and an insert).
        self._upsert_report = _upsert_sql("reports", self._columns("reports"))
        self._upsert_progress = _upsert_sql("progress", self._columns("progress"))
        self.on_write: Callable[[float], None] | None = None  # /metrics: seconds per write

    def _side_parts(self, conn: SqlConnection) -> tuple[Checkpoints, SqlConnection]:
        """The WAL is copied into the database file by a worker thread, never in a commit
        here (that commit may be on the event loop: see `checkpoint`). Reads take a
        connection of their own: WAL readers never wait for the writer, so a read on the
        event loop (a report, say) does not wait out a worker thread's slice of a big
        apply. They see every committed write, which is all we make. (PgStore: its own.)"""
        assert isinstance(conn, sqlite3.Connection)
        main = Path(next(row[2] for row in conn.execute("PRAGMA database_list")
                         if row[1] == "main"))
        self._main = main  # release_memory opens the read connection again
        return Checkpointer(main, conn, self._lock), connect(main, read_only=True)

    def _columns(self, table: str) -> list[str]:
        """The table's columns in their order (the codec's rows follow it)."""
        return [str(r[1]) for r in self._conn.execute(f"PRAGMA table_info({table})")]

    @contextmanager
    def _tx(self, *, durable: bool = False, tallies: bool = True) -> Iterator[SqlConnection]:
        """One write transaction. `tallies` False: it writes no row the tallies' triggers
        count (progress, reports, devices) and only one row, so on a shared database it
        need not queue behind the other nodes' writers (`store.pg.writer`)."""
        started = time.perf_counter()
        with self._write(durable=durable, tallies=tallies) as conn:
            yield conn
        if self.on_write is not None:  # committed: a rolled-back write is no latency
            self.on_write(time.perf_counter() - started)
        self._checkpointer.committed()

    @contextmanager
    def _write(self, *, durable: bool, tallies: bool = True) -> Iterator[SqlConnection]:
        with self._lock:  # the file's one writer: every transaction is ordered anyway
            if durable:
                self._conn.execute("PRAGMA synchronous = FULL")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            finally:
                if durable:
                    self._conn.execute("PRAGMA synchronous = NORMAL")

    def _query(self, sql: str, args: Sequence[object] = ()) -> list[codec.Row]:
        with self._read_lock:
            return [tuple(r) for r in self._reads.execute(sql, args)]

    # --- desired state -------------------------------------------------------------
    def apply_desired(self, desired: DesiredState) -> None:
        """Materialise the snapshot, writing only rows that differ from the stored ones,
        in slices of one short transaction each (see `desired_sync`): meant for a worker
        thread, while the event loop keeps writing between slices."""
        apply_in_slices(self._tx, desired, self._checkpointer.catch_up)
        with self._tx() as conn:
            _set_meta(conn, "applied_revision", desired.revision)
            # Every apply, even of the same revision id: readers that cache what the
            # desired rows say (the API's device lists) compare this, not the id.
            conn.execute("INSERT INTO meta VALUES ('desired_generation', '1') ON CONFLICT "
                         "(key) DO UPDATE SET value = "
                         "CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)")

    def catch_up(self) -> None:
        """Between two slices of a bulk write, from a worker thread: the WAL is copied
        into the database file, so the next write can start it over (`checkpoint`)."""
        self._checkpointer.catch_up()

    def applied_revision(self) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = 'applied_revision'")
        return str(rows[0][0]) if rows else None

    def set_source_status(self, status: Mapping[str, object]) -> None:
        """Store the source status (the fields of `sources.SourceStatus`, snake_case)."""
        with self._tx(tallies=False) as conn:
            _set_meta(conn, "source_status", json.dumps(dict(status), default=_jsonable))

    # --- registrations and reports -------------------------------------------------
    def put_registration(self, reg: Registration, formats: ContentFormats = NO_FORMATS,
                         *, node: str | None = None) -> None:
        """Store an Update; with `node`, only while that node owns the row (an Update of
        a registration another node has taken over since must not overwrite its row)."""
        sql = _UPSERT_REGISTRATION + (f" WHERE {_MINE}" if node is not None else "")
        args = codec.registration_row(reg, formats) + ((node,) if node is not None else ())
        with self._tx(tallies=False) as conn:
            conn.execute(sql, args)

    def claim_registration(self, reg: Registration, formats: ContentFormats,
                           node: str) -> int:
        """Store a Register at `node`, which owns the device from now on; returns the
        epoch: the same while `node` already owned it, else a new one (every write fenced
        with an older epoch is refused from this commit on)."""
        with self._tx() as conn:
            conn.execute(_UPSERT_REGISTRATION, codec.registration_row(reg, formats))
            owner, epoch = conn.execute("SELECT owner, epoch FROM registrations "
                                        "WHERE endpoint = ?", (reg.endpoint,)).fetchone()
            if owner == node and epoch:
                return int(epoch)
            epoch = _next_epoch(conn)
            conn.execute("UPDATE registrations SET owner = ?, epoch = ? WHERE endpoint = ?",
                         (node, epoch, reg.endpoint))
            return epoch

    def adopt_registrations(self, node: str, now: float) -> dict[str, int]:
        """After a restart: the live registrations `node` resumes, endpoint -> epoch. One
        file has one writer (the flock), so every live registration in it is this
        node's: those recorded under another name (a new node id) move to it, under one
        new epoch."""
        with self._tx() as conn:
            epoch = _next_epoch(conn)
            # every row, not only the live ones: none may keep a name no node has now
            conn.execute("UPDATE registrations SET owner = ?, epoch = ? "
                         "WHERE owner IS NULL OR owner <> ?", (node, epoch, node))
            rows = conn.execute(f"SELECT endpoint, epoch FROM registrations WHERE {_LIVE}",
                                (now,)).fetchall()
        return {str(endpoint): int(e) for endpoint, e in rows}

    def delete_registration(self, endpoint: str, *, node: str | None = None) -> None:
        """Forget a registration; with `node`, only while that node owns it (the expiry
        of a registration whose device went to another node leaves that node's row)."""
        sql, args = "DELETE FROM registrations WHERE endpoint = ?", [endpoint]
        if node is not None:
            sql, args = f"{sql} AND {_MINE}", [endpoint, node]
        with self._tx(tallies=False) as conn:
            conn.execute(sql, args)

    def heartbeat(self, node: str, now: float, lease: float) -> None:
        """`node` is alive and acting until `now + lease` (its lease, for /status and
        for the other nodes)."""
        with self._tx(tallies=False) as conn:
            conn.execute("INSERT INTO nodes VALUES (?, ?, ?) ON CONFLICT (node) DO UPDATE "
                         "SET lease_until = excluded.lease_until, seen_at = excluded.seen_at",
                         (node, now + lease, now))

    def registrations(self) -> list[Registration]:
        rows = self._query(f"SELECT {_REG_SELECT} FROM registrations ORDER BY endpoint")
        return [codec.registration_from_row(r) for r in rows]

    def live_registrations(self, now: float) -> list[tuple[Registration, ContentFormats]]:
        """Registrations whose lifetime has not run out at `now`, with their formats:
        what a restarted server restores."""
        rows = self._query(f"SELECT {_REG_SELECT} FROM registrations WHERE {_LIVE} "
                           "ORDER BY endpoint",
                           (now,))
        return [(codec.registration_from_row(r), codec.formats_from_row(r)) for r in rows]

    # --- firmware offers -------------------------------------------------------------
    def put_offer(self, offer: FirmwareOffer) -> None:
        """Record a package URI before it is handed out; it replaces the endpoint's
        previous offer (one live offer per endpoint, so the table stays as small as the
        fleet)."""
        with self._tx() as conn:
            conn.execute("DELETE FROM offers WHERE endpoint = ?", (offer.endpoint,))
            conn.execute(_INSERT_OFFER, codec.offer_row(offer))

    def delete_offer(self, endpoint: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM offers WHERE endpoint = ?", (endpoint,))

    def offer_by_token(self, token: str, now: float) -> FirmwareOffer | None:
        """The live offer at `token` (another node's, when several share the store)."""
        rows = self._query("SELECT * FROM offers WHERE token = ? AND expires_at > ?",
                           (token, now))
        return codec.offer_from_row(rows[0]) if rows else None

    def live_offers(self, now: float) -> list[FirmwareOffer]:
        rows = self._query("SELECT * FROM offers WHERE expires_at > ? ORDER BY endpoint",
                           (now,))
        return [codec.offer_from_row(r) for r in rows]

    # --- how far pushes came ----------------------------------------------------------
    def put_push_positions(self, positions: Sequence[PushPosition],
                           gone: Sequence[str] = ()) -> None:
        """Record where each push stands (one row per endpoint, replaced) and delete the
        rows of the endpoints in `gone` (their push ended: delivered, or its update
        ended), in one transaction: the batch `controller.push_log` writes. No row the
        tallies count: on a shared database it skips their queue, and its rows are taken
        in endpoint order, so two nodes' batches never wait for each other in a cycle."""
        with self._tx(tallies=False) as conn:
            if gone:
                conn.executemany("DELETE FROM push_positions WHERE endpoint = ?",
                                 [(endpoint,) for endpoint in sorted(gone)])
            if positions:
                conn.executemany(_UPSERT_PUSH_POSITION, [
                    codec.push_position_row(p)
                    for p in sorted(positions, key=lambda p: p.endpoint)])

    def push_positions(self) -> list[PushPosition]:
        """Every recorded push position: what a restarted server resumes pushes from."""
        rows = self._query("SELECT * FROM push_positions ORDER BY endpoint")
        return [codec.push_position_from_row(r) for r in rows]

    def forget_expired(self, now: float) -> int:
        """Delete registrations and offers that ran out before `now`; returns how many."""
        with self._tx() as conn:
            gone = conn.execute(f"DELETE FROM registrations WHERE NOT ({_LIVE})",
                                (now,)).rowcount
        return int(gone) + self.forget_expired_offers(now)

    def forget_expired_offers(self, now: float) -> int:
        """Delete the offers that ran out by `now` (the indexed expiry), in slices of
        one short transaction each, so a loop writing meanwhile waits for one slice at
        most; returns how many."""
        gone = 0
        while True:
            with self._tx() as conn:
                count = int(conn.execute(_DELETE_EXPIRED_OFFERS, (now, _SLICE)).rowcount)
            gone += count
            if count < _SLICE:
                return gone

    def prune_events(self, retention: EventRetention, now: float) -> Pruned:
        """Delete the events `retention` says are due, one short transaction per slice
        (see `retention.prune`); called from a worker thread."""
        return prune(self._tx, retention, now)

    def put_read_formats(self, formats: Sequence[tuple[str, str, int | None]]) -> None:
        """(endpoint, registration id, read format) each: the format a registration's
        reads accepted, in one transaction. A registration replaced since (another id)
        keeps what its own Register wrote."""
        with self._tx() as conn:
            conn.executemany("UPDATE registrations SET read_format = ? "
                             "WHERE endpoint = ? AND registration_id = ?",
                             [(fmt, endpoint, rid) for endpoint, rid, fmt in formats])

    def set_restart_status(self, status: Mapping[str, object]) -> None:
        """What this process restored when it started (shown under /status)."""
        with self._tx(tallies=False) as conn:
            _set_meta(conn, "restart_status", json.dumps(dict(status), default=_jsonable))

    def set_admission_status(self, status: Mapping[str, object]) -> None:
        """Undeclared endpoints refused at Register (shown under /status)."""
        with self._tx(tallies=False) as conn:
            _set_meta(conn, "admission_status", json.dumps(dict(status), default=_jsonable))

    def set_dtls_status(self, status: Mapping[str, object]) -> None:
        """The CoAPs listener's counters (shown under /status as `dtls`)."""
        with self._tx(tallies=False) as conn:
            _set_meta(conn, "dtls_status", json.dumps(dict(status), default=_jsonable))

    def set_listeners(self, listeners: Mapping[str, object]) -> None:
        """The LwM2M listeners this run serves, `coap` and `coaps` as HOST:PORT or None
        (shown under /status as `listeners`)."""
        with self._tx(tallies=False) as conn:
            _set_meta(conn, "listeners", json.dumps(dict(listeners)))

    def set_credentials_status(self, status: Mapping[str, object]) -> None:
        """The credentials file's reloader: count, last load, last error (never a key;
        shown under /status)."""
        with self._tx(tallies=False) as conn:
            _set_meta(conn, "credentials_status", json.dumps(dict(status), default=_jsonable))

    def set_notify_state(self, state: Mapping[str, object]) -> None:
        """The notifier's event cursor and the commit statuses it posted: what a restart
        needs so it neither loses nor repeats notifications (`reconciler.notify`)."""
        with self._tx(tallies=False) as conn:
            _set_meta(conn, "notify_state", json.dumps(dict(state), default=_jsonable))

    def put_report(self, device_id: str, report: DeviceReport, *,
                   fence: Fence | None = None) -> None:
        """Store the report and re-derive the device's current image in one transaction;
        with `fence`, only while the fence's node may write about the device (NotOwner)."""
        version = report.firmware_version.strip() if report.firmware_version else None
        with self._tx() as conn:
            if fence is not None:
                _check_fence(conn, fence)
            conn.execute(self._upsert_report, codec.report_row(device_id, report))
            conn.execute(_SET_CURRENT, (version, device_id))

    def report(self, device_id: str) -> DeviceReport | None:
        rows = self._query("SELECT * FROM reports WHERE device_id = ?", (device_id,))
        return codec.report_from_row(rows[0]) if rows else None

    def reports(self, device_ids: Sequence[str]) -> dict[str, DeviceReport]:
        """The reports of those of `device_ids` that have one: one query per
        `REPORTS_AT_ONCE` ids (a revision's retarget asks a slice's devices at once)."""
        return {row[0]: codec.report_from_row(row)
                for row in self._rows_of("reports", device_ids)}

    # --- progress, events, conditions, collection status ---------------------------
    def put_progress(self, progress: DeviceProgress, events: Sequence[DeviceEvent] = (),
                     *, durable: bool = False, fence: Fence | None = None,
                     slot: SlotClaim | None = None) -> None:
        """The progress row and its events land together or not at all; `durable` also
        waits until they are on disk (for the record that precedes an Execute). With
        `fence`, only while the fence's node owns the device at its epoch (else
        NotOwner); with `slot`, only while the collection has fewer devices in flight
        than the claim's limit (else NoSlot): checked in the same transaction."""
        with self._tx(durable=durable) as conn:
            if fence is not None:
                _check_fence(conn, fence)
            if slot is not None:
                _check_slot(conn, slot)
            conn.execute(self._upsert_progress, codec.progress_row(progress))
            if events:
                conn.executemany(_INSERT_EVENT, [_event_row(e) for e in events])
        if events:
            self.event_hub.publish()

    def put_progress_many(
        self, items: Sequence[tuple[DeviceProgress, Sequence[DeviceEvent]]],
        *, node: str | None = None
    ) -> None:
        """Many progress rows and their events in one transaction (a new revision that
        retargets a whole fleet). With `node`, the devices another node owns are left to
        it (their records and events): each node retargets its own."""
        with self._tx() as conn:
            if node is not None:
                items = _not_owned_elsewhere(conn, items, node)
            conn.executemany(self._upsert_progress, [codec.progress_row(p) for p, _ in items])
            rows = [_event_row(e) for _, events in items for e in events]
            conn.executemany(_INSERT_EVENT, rows)
        if rows:
            self.event_hub.publish()

    def progress(self, device_id: str) -> DeviceProgress | None:
        rows = self._query("SELECT * FROM progress WHERE device_id = ?", (device_id,))
        return codec.progress_from_row(rows[0]) if rows else None

    def progress_of(self, device_ids: Sequence[str]) -> dict[str, DeviceProgress]:
        """The progress records of those of `device_ids` that have one: one query per
        `REPORTS_AT_ONCE` ids (a batch of devices that came from other nodes)."""
        return {row[0]: codec.progress_from_row(row)
                for row in self._rows_of("progress", device_ids)}

    def _rows_of(self, table: str, device_ids: Sequence[str]) -> Iterator[codec.Row]:
        """The rows of `table` (keyed by device_id) for those of `device_ids` it has: one
        query per `REPORTS_AT_ONCE` ids."""
        for marks, chunk in padded_chunks(device_ids, REPORTS_AT_ONCE):  # few SQL texts
            yield from self._query(f"SELECT * FROM {table} WHERE device_id IN ({marks})",
                                   chunk)

    def all_progress(self) -> list[DeviceProgress]:
        rows = self._query("SELECT * FROM progress ORDER BY device_id")
        return [codec.progress_from_row(r) for r in rows]

    def change_seq(self) -> int:
        """The tallies' change counter: a record committed after this read has a greater
        stamp in `device_changes` (it grows in commit order)."""
        rows = self._query("SELECT n FROM change_seq")
        return int(rows[0][0]) if rows else 0

    def progress_changes(self, collection_id: str, since: int,
                         limit: int) -> tuple[int, list[DeviceProgress]]:
        """The progress records of the collection's devices changed after stamp `since`
        (by any node), at most `limit` changes; and the stamp to ask from next time."""
        rows = self._query("SELECT c.seq, p.* FROM device_changes c LEFT JOIN progress p "
                           "ON p.device_id = c.device_id WHERE c.collection_id = ? AND "
                           "c.seq > ? ORDER BY c.seq LIMIT ?", (collection_id, since, limit))
        if not rows:
            return since, []
        return int(rows[-1][0]), [codec.progress_from_row(r[1:]) for r in rows
                                  if r[1] is not None]

    def put_conditions(self, subject: str, conditions: Sequence[Condition]) -> None:
        """Replace the conditions of `subject` (a device id or a collection id)."""
        with self._tx() as conn:
            conn.execute("DELETE FROM conditions WHERE subject = ?", (subject,))
            conn.executemany(_INSERT_CONDITION,
                             [codec.condition_row(subject, c) for c in conditions])

    def put_conditions_many(self, items: Sequence[tuple[str, Sequence[Condition]]],
                            *, node: str | None = None) -> None:
        """`put_conditions` for many subjects in one transaction. With `node`, the
        devices another node owns are left to it, as in `put_progress_many`."""
        with self._tx() as conn:
            if node is not None:
                theirs = _owned_elsewhere(conn, [subject for subject, _ in items], node)
                items = [item for item in items if item[0] not in theirs]
            conn.executemany("DELETE FROM conditions WHERE subject = ?",
                             [(subject,) for subject, _ in items])
            conn.executemany(_INSERT_CONDITION, [codec.condition_row(subject, c)
                                                 for subject, conds in items for c in conds])

    def put_collection_status(self, collection_id: str, status: Mapping[str, object], *,
                              stamp: int | None = None, at: float | None = None) -> None:
        """Replace the collection's rollout status. The API shows the whole mapping under
        `rollout` and reads `halted` (bool) and `reason` (why, while halted) or
        `halt_reason`. With `stamp` (the writer's feed position, several nodes) only if
        not older than the stored one, and a halt sticks for its revision
        (`collection_status`). A halt recorded or lifted appends a `rollout` event
        stamped `at` (the caller's clock; default now)."""
        text = json.dumps(dict(status), default=_jsonable)
        revision = status.get("revision")
        with self._tx(tallies=False) as conn:
            appended = collection_status.write(
                conn, collection_id, text, None if revision is None else str(revision),
                collection_status.halt_of(status), stamp=stamp,
                at=time.time() if at is None else at)
        if appended:
            self.event_hub.publish()

    def release_memory(self) -> None:
        """After a revision that added or removed many devices (the decider, in a worker
        thread): the read connection is replaced by a new one and the writer's page cache
        emptied. A connection keeps its compiled statements and weak references to its
        recent cursors; made while the revision's objects filled the heap, they keep the
        1 MiB pymalloc arenas they sit in from going back to the system once those
        objects are gone; the new connection's are made in the emptied heap. Its page
        cache (up to `cache_size`, 2 MB) is malloc'd memory the trim after the apply can
        give back. (PostgreSQL: the server holds the caches; nothing to do here.)"""
        if not isinstance(self._conn, sqlite3.Connection):
            return
        fresh = connect(self._main, read_only=True)
        with self._read_lock:
            old, self._reads = self._reads, fresh
            old.close()
        with self._lock:
            self._conn.execute("PRAGMA shrink_memory")

    def close(self) -> None:
        self._checkpointer.close()
        with self._read_lock:
            self._reads.close()
        with self._lock:
            self._conn.close()
            if self._file_lock is not None:
                os.close(self._file_lock)
                self._file_lock = None


def _event_row(e: DeviceEvent) -> codec.Row:
    return (*codec.event_row(e), e.device_id)  # the last for the collection lookup


def _upsert_sql(table: str, columns: list[str]) -> str:
    """INSERT of a whole row (the codec's column order) that updates the row with the
    same first column (the key) in place."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    return (f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT ({columns[0]}) DO UPDATE SET {updates}")


def _not_owned_elsewhere(
        conn: SqlConnection, items: Sequence[tuple[DeviceProgress, Sequence[DeviceEvent]]],
        node: str) -> Sequence[tuple[DeviceProgress, Sequence[DeviceEvent]]]:
    theirs = _owned_elsewhere(conn, [progress.device_id for progress, _ in items], node)
    return [item for item in items if item[0].device_id not in theirs] if theirs else items


def _owned_elsewhere(conn: SqlConnection, ids: Sequence[str], node: str) -> set[str]:
    """Those of the device ids `ids` (other ids match nothing) another node owns."""
    theirs: set[str] = set()
    for marks, chunk in padded_chunks(ids, _SLICE):  # a few SQL texts: see fixed_in
        theirs.update(str(r[0]) for r in conn.execute(
            "SELECT d.device_id FROM devices d JOIN registrations r ON r.endpoint = "
            f"d.endpoint WHERE r.owner <> ? AND d.device_id IN ({marks})", (node, *chunk)))
    return theirs


def _next_epoch(conn: SqlConnection) -> int:
    """The next value of the store-wide ownership counter (never handed out twice)."""
    row = conn.execute("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) "
                       "WHERE key = 'ownership_epoch' RETURNING value").fetchone()
    return int(row[0])


def _check_fence(conn: SqlConnection, fence: Fence) -> None:
    """An UPDATE, not a SELECT: on PostgreSQL it locks the row until this transaction
    ends, so a Register at another node (its claim) waits for this write and then sees
    it (the record before an Execute above all); on SQLite the transaction holds the
    whole file anyway."""
    held = conn.execute("UPDATE registrations SET epoch = epoch WHERE endpoint = ? AND "
                        "owner = ? AND epoch = ?",
                        (fence.endpoint, fence.node, fence.epoch)).rowcount
    if held != 1:
        row = conn.execute("SELECT owner, epoch FROM registrations WHERE endpoint = ?",
                           (fence.endpoint,)).fetchone()
        if row is None and not fence.strict:
            return
        held_by = f"{row[0]} at epoch {row[1]}" if row else "no node (no registration)"
        raise NotOwner(f"{fence.endpoint}: owned by {held_by}, not {fence.node} at epoch "
                       f"{fence.epoch}")


def _check_slot(conn: SqlConnection, slot: SlotClaim) -> None:
    """The tallies count devices per (collection, state) for every node's writes. The
    collection's row is locked first (a no-op UPDATE), so on PostgreSQL two nodes taking
    the last slot at once count one after the other (read committed: the second count
    sees the first's commit); on SQLite the transaction holds the whole file anyway."""
    conn.execute("UPDATE collections SET collection_id = collection_id "
                 "WHERE collection_id = ?", (slot.collection_id,))
    marks = ", ".join("?" * len(IN_FLIGHT))
    row = conn.execute(f"SELECT COALESCE(SUM(n), 0) FROM state_counts WHERE "
                       f"collection_id = ? AND state IN ({marks})",
                       (slot.collection_id, *IN_FLIGHT)).fetchone()
    if int(row[0]) >= slot.limit:
        raise NoSlot(f"waiting for a slot: {row[0]} of max {slot.limit} updating "
                     "on all nodes")


def _set_meta(conn: SqlConnection, key: str, value: str) -> None:
    conn.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) "
                 "DO UPDATE SET value = excluded.value", (key, value))


def _jsonable(value: object) -> object:
    """json.dumps fallback: tuples/sets as lists, enums by value, anything else as text."""
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return getattr(value, "value", str(value))
