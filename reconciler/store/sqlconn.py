"""The part of a DB-API connection the store's shared SQL runs on, as a Protocol.

`sqlite3.Connection` satisfies it as it is; the PostgreSQL store (`store.pg`) hands the
same code a `QmarkConnection` around psycopg, so the writer's transactions, the
desired-state sync and the event feed run one text of SQL on either engine. SQL written
against it is portable: `?` placeholders, `ON CONFLICT ... DO UPDATE` upserts, no
engine-specific functions (those live in each engine's own modules).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol


class SqlCursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class SqlConnection(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> SqlCursor: ...
    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...
    def close(self) -> None: ...
