"""`PgReader`: the API's view of a PostgreSQL store, on a small pool of connections.

Like `PgStore`, it inherits the reader's portable queries (`SqliteReader`: collections,
images, usage, status, tallies, conditions, events) and replaces what SQLite answers in
its own words: the device columns and JSON lists (`dialect`), the keyset pages
(`pg.pages`), and `version()`, which SQLite reads from `PRAGMA data_version`: here the
server's current snapshot (`pg_current_snapshot()`), which changes with every commit
of a writing transaction anywhere in the cluster (and only then), counted by this
reader. Each query borrows a connection of a `psycopg_pool` pool (autocommit), so the
slow JSON lists never hold up the quick queries, as SQLite's second connection does.
Built by `open_pg_reader(url)`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from reconciler.store import codec
from reconciler.store.event_log import EventRecord, events_after, last_seq, pruned_through
from reconciler.store.pages import DeviceQuery, device_page
from reconciler.store.pg import dialect
from reconciler.store.pg.connection import (
    QmarkConnection,
    StoreUnavailable,
    redact,
)
from reconciler.store.pg.pages import POSTGRES
from reconciler.store.pg.schema import SCHEMA_VERSION, version
from reconciler.store.reader import SqliteReader, _device
from reconciler.store.schema import SchemaError
from reconciler.store.tcp_timeouts import with_tcp_timeouts
from reconciler.store.views import DevicePage, DeviceView

# Connections per reader. `fota serve` opens two: the API's (its handlers and the
# worker threads of the big lists) and the notifier's own (serve/service.py: it never
# waits behind the API), so up to 8 reader connections a node.
POOL_SIZE = 4


READ_TIMEOUT = 2.0  # seconds a query waits for a connection (or to connect)


def open_pg_reader(url: str) -> PgReader:
    """A reader of a database that `open_pg_store` migrated."""
    pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
        with_tcp_timeouts(url), min_size=1, max_size=POOL_SIZE, open=False, name="fota-reader",
        # A database cut off must cost a request seconds, not the pool's 30 s default:
        # the API runs on the event loop the node's lease and /readyz need (cluster).
        timeout=READ_TIMEOUT,
        kwargs={"autocommit": True, "application_name": "fota-reader",
                "connect_timeout": int(READ_TIMEOUT)},
        check=ConnectionPool.check_connection)
    try:
        pool.open(wait=True, timeout=10)
        with pool.connection() as conn:
            found = version(conn)
    except (psycopg.Error, PoolTimeout) as exc:
        pool.close()
        raise StoreUnavailable(f"cannot read {redact(url)}: {exc}") from exc
    except BaseException:
        pool.close()
        raise
    if found != SCHEMA_VERSION:
        pool.close()
        raise SchemaError(f"{redact(url)}: schema version {found}, this reader knows "
                          f"{SCHEMA_VERSION}")
    return PgReader(pool)


class PgReader(SqliteReader):
    """Read-only queries for the API. Build with `open_pg_reader(url)`."""

    def __init__(self, pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]]) -> None:
        self._pool = pool
        self._seen: tuple[str, int] = ("", 0)  # the last snapshot and its version
        self._seen_lock = threading.Lock()

    def _rows(self, sql: str, args: Sequence[object] = ()) -> list[codec.Row]:
        with self._pool.connection() as conn:
            return QmarkConnection(conn).execute(sql, args).fetchall()

    def _one(self, sql: str, args: Sequence[object] = ()) -> codec.Row | None:
        with self._pool.connection() as conn:
            row: codec.Row | None = QmarkConnection(conn).execute(sql, args).fetchone()
            return row

    def version(self) -> int:
        """Moves whenever a writing transaction committed since the last call."""
        row = self._one("SELECT pg_current_snapshot()::text")
        snapshot = str(row[0]) if row else ""
        with self._seen_lock:
            if snapshot != self._seen[0]:
                self._seen = (snapshot, self._seen[1] + 1)
            return self._seen[1]

    def usage_json(self, image_id: str) -> tuple[str, str]:
        row = self._one(dialect.USAGE_JSON, (image_id, image_id))
        return (str(row[0]), str(row[1])) if row else ("[]", "[]")

    def devices(self, collection_id: str) -> list[DeviceView]:
        rows = self._rows(dialect.DEVICE_SQL + " WHERE d.collection_id = ? "
                          "ORDER BY d.device_id", (collection_id,))
        return [_device(r) for r in rows]

    def devices_json(self, collection_id: str) -> str:
        row = self._one(dialect.DEVICES_JSON, (collection_id,))
        return str(row[0]) if row else "[]"

    def devices_json_rows(self, collection_id: str, ids: Sequence[str] | None = None
                          ) -> list[tuple[str, str]]:
        if ids is None:
            rows = self._rows(dialect.DEVICE_ROWS + " ORDER BY d.device_id", (collection_id,))
        else:
            rows = self._rows(dialect.DEVICE_ROWS + " AND d.device_id = ANY(?) "
                              "ORDER BY d.device_id", (collection_id, list(ids)))
        return [(str(r[0]), str(r[1])) for r in rows]

    def device(self, collection_id: str, device_id: str) -> DeviceView | None:
        row = self._one(dialect.DEVICE_SQL + " WHERE d.device_id = ? AND d.collection_id = ?",
                        (device_id, collection_id))
        return _device(row) if row else None

    def device_page(self, query: DeviceQuery) -> DevicePage:
        with self._pool.connection() as conn:
            page = device_page(QmarkConnection(conn), dialect.DEVICE_COLUMNS, query, POSTGRES)
        return DevicePage([_device(r) for r in page.rows], page.resume_after)

    def events_after(self, after: int, *, collection: str | None = None,
                     device: str | None = None, limit: int = 100) -> list[EventRecord]:
        with self._pool.connection() as conn:
            return events_after(QmarkConnection(conn), after, collection=collection,
                                device=device, limit=limit)

    def last_event_seq(self) -> int:
        with self._pool.connection() as conn:
            return last_seq(QmarkConnection(conn))

    def events_pruned_through(self) -> int:
        with self._pool.connection() as conn:
            return pruned_through(QmarkConnection(conn))

    def close(self) -> None:
        self._pool.close()
