"""The PostgreSQL store: the `Store` and `StoreReader` of a database several nodes can
share, selected by a `--state` of `postgresql://...` (`store.open_store`).

`connection` (psycopg sessions, the `?` adapter), `schema` (versioned migrations in a
`schema_version` table), `tallies` (the triggers of `store.tallies` in PL/pgSQL),
`dialect` (the SQL that differs from SQLite's), `pages`, `writer` (`PgStore`), `reader`
(`PgReader`). The writer and the reader inherit the SQLite classes' methods, whose SQL
is portable, so one text of each statement serves both engines.
Across processes, a transaction that appended events NOTIFYs `schema.EVENTS_CHANNEL`:
the hook for a node's readers to wake when another node wrote (`EventHub` wakes the
writer's own process, as with SQLite).
"""

from reconciler.store.pg.connection import StoreUnavailable
from reconciler.store.pg.reader import PgReader, open_pg_reader
from reconciler.store.pg.schema import EVENTS_CHANNEL
from reconciler.store.pg.writer import PgStore, open_pg_store

__all__ = ["EVENTS_CHANNEL", "PgReader", "PgStore", "StoreUnavailable", "open_pg_reader",
           "open_pg_store"]
