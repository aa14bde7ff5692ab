"""`PgStore`: the controller's writer on a PostgreSQL database.

It is `SqliteStore` with PostgreSQL's connection and transactions: every method (and so
every statement, written once in portable SQL through `QmarkConnection`) is inherited,
which is what keeps the engines from drifting apart; the parametrized store suite runs
both. What differs is here: one session, transactions `BEGIN ... COMMIT` under the
same lock; `synchronous_commit` off for the session, as SQLite's WAL with
synchronous=NORMAL (a crash of the database server loses no committed transaction, a
power cut may lose the last few), and on for a `durable` write (the record before an
Execute), which returns only once the commit is flushed to disk. A session-level
advisory lock makes one writer per database, as the flock does per SQLite file (the
cluster's ownership fencing relaxes this). A session the server dropped is reopened
once per call, taking that lock again. Built by `open_pg_store(url)`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress

import psycopg

from reconciler.errors import StateFileInUse
from reconciler.model.lwm2m import ContentFormats, Registration
from reconciler.store import codec
from reconciler.store.pg.batch import Batch
from reconciler.store.pg.connection import (
    Connection,
    QmarkConnection,
    StoreUnavailable,
    connect,
    redact,
)
from reconciler.store.pg.schema import migrate
from reconciler.store.sqlconn import SqlConnection
from reconciler.store.writer import _LIVE, _REG_COLUMNS, Checkpoints, SqliteStore

WRITER_LOCK = 0x666F7461_77726974  # "fotawrit": the one writer of a database
NODE_LOCKS = 0x666F6E64  # "fond": (this, hashtext(node id)) is one node's writer lock


def open_pg_store(url: str, node: str | None = None) -> PgStore:
    """Connect, take the writer's lock, migrate; StateFileInUse while another writer
    holds the database, StoreUnavailable when it cannot be reached."""
    raw = _writer_session(url, node)
    try:
        migrate(raw)
    except psycopg.Error as exc:  # no rights to create tables, the server went away
        raw.close()
        raise StoreUnavailable(f"cannot migrate {redact(url)}: {exc}") from exc
    except BaseException:
        raw.close()
        raise
    return PgStore(QmarkConnection(raw), url, node)


def _writer_session(url: str, node: str | None = None) -> Connection:
    raw = connect(url, application="fota-writer")
    try:
        raw.execute("SET synchronous_commit = off")
        if node is None:  # one writer per database
            row = raw.execute("SELECT pg_try_advisory_lock(%s)", (WRITER_LOCK,)).fetchone()
        else:  # several nodes (reconciler.cluster): one process per node id
            row = raw.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                              (NODE_LOCKS, node)).fetchone()
    except BaseException:
        raw.close()
        raise
    if not row or not row[0]:
        raw.close()
        who = "another fota process" if node is None else f"another node named {node!r}"
        raise StateFileInUse(f"{redact(url)} is in use by {who}")
    return raw


class PgStore(SqliteStore):
    """The writer on PostgreSQL. Build with `open_pg_store(url)`."""

    def __init__(self, conn: QmarkConnection, url: str, node: str | None = None) -> None:
        self.node = node  # several nodes: this one's writer lock (reconciler.cluster)
        self._pg = conn
        self._url = url
        super().__init__(conn)

    def _columns(self, table: str) -> list[str]:
        rows = self._pg.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "AND table_schema = current_schema() ORDER BY ordinal_position", (table,))
        return [str(r[0]) for r in rows]

    def _side_parts(self, conn: SqlConnection) -> tuple[Checkpoints, SqlConnection]:
        """No WAL of ours to checkpoint; reads on a session of their own (as SQLite's),
        so a read on the event loop never waits out a worker thread's write."""
        return _NoCheckpoints(), QmarkConnection(connect(self._url, application="fota-reads"))

    @contextmanager
    def _write(self, *, durable: bool, tallies: bool = True) -> Iterator[SqlConnection]:
        """One transaction, sent in as few round trips as its statements allow
        (`batch.Batch`); `durable`: its commit waits until the WAL is on disk;
        `tallies`: it queues behind the other nodes' writers first (see Batch)."""
        with self._lock:
            batch = Batch(self._session(), durable=durable, ordered=tallies)
            try:
                yield batch
                batch.commit()
            except BaseException:
                batch.rollback()
                raise

    def _query(self, sql: str, args: Sequence[object] = ()) -> list[codec.Row]:
        with self._read_lock:
            reads = self._reads
            assert isinstance(reads, QmarkConnection)
            if reads.raw.broken or reads.raw.closed:  # dropped by the server: reopen
                reads.raw.close()
                reads.raw = connect(self._url, application="fota-reads")
            return [tuple(r) for r in reads.execute(sql, args)]

    def _session(self) -> Connection:
        """The live session: one the server dropped is replaced (under `_lock`), taking
        the writer's lock again; a failure to reconnect is StoreUnavailable."""
        if self._pg.raw.broken or self._pg.raw.closed:
            self._pg.raw.close()
            self._pg.raw = _writer_session(self._url, self.node)
        return self._pg.raw

    def claim_registration(self, reg: Registration, formats: ContentFormats,
                           node: str) -> int:
        """As SQLite's, in one statement and one round trip: the epoch comes from a
        sequence (`ownership_epochs`), which hands out each number once and locks no
        row, so Registers at several nodes do not queue on one counter (each costs a
        number, kept or not); the row keeps its epoch while `node` already owns it."""
        with self._tx(tallies=False) as conn:
            claimed = conn.execute(_CLAIM, (*codec.registration_row(reg, formats), node))
        return int(claimed.fetchone()[0])

    def adopt_registrations(self, node: str, now: float) -> dict[str, int]:
        """After a restart: the live registrations the database says `node` owns (the
        others' stay theirs; a device another node took meanwhile is not resumed)."""
        rows = self._query(f"SELECT endpoint, epoch FROM registrations WHERE owner = ? "
                           f"AND {_LIVE}", (node, now))
        return {str(endpoint): int(epoch) for endpoint, epoch in rows}

    def close(self) -> None:
        with self._read_lock:
            self._reads.close()
        with self._lock:
            # The writer's advisory lock is released here, before close returns: left to
            # the session's end, the server releases it a moment after our socket closes,
            # and a process that opens the store right after (a restart) was refused as
            # "in use by another fota process". A session already gone has none to release.
            with suppress(psycopg.Error):
                self._pg.raw.execute("SELECT pg_advisory_unlock_all()")
            self._pg.close()


_CLAIM = (
    f"INSERT INTO registrations ({', '.join(_REG_COLUMNS)}, owner, epoch) "
    f"VALUES ({', '.join('?' * len(_REG_COLUMNS))}, ?, nextval('ownership_epochs')) "
    "ON CONFLICT (endpoint) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _REG_COLUMNS[1:])
    + ", owner = excluded.owner, epoch = CASE WHEN registrations.owner = excluded.owner "
    "AND registrations.epoch <> 0 THEN registrations.epoch ELSE excluded.epoch END "
    "RETURNING epoch")


class _NoCheckpoints:
    def committed(self) -> None:
        return None

    def catch_up(self) -> None:
        return None

    def close(self) -> None:
        return None


__all__ = ["PgStore", "StoreUnavailable", "open_pg_store"]
