"""Connections to PostgreSQL for the store: the URL test, the writer's session, the TCP
timeouts every connection carries, and the `?`-placeholder adapter that lets the store's
portable SQL (`store.sqlconn`) run here.

Every connection (writer, reads, the API's pool, the leader's) asks libpq for TCP
keepalives and a TCP user timeout (`store.tcp_timeouts`, from `fota serve`'s `pg_*` settings):
without them a database behind a dead network path holds a worker's call for the
kernel's timeouts (~15 minutes of retransmissions for unacknowledged data; for an idle
connection libpq's keepalives run on the kernel's timer, first probe after 2 hours)
instead of failing within about a minute. A parameter the URL names itself wins.

psycopg 3's synchronous API, not asyncpg: every store call is synchronous (the controller
calls it from its loop and from worker threads, under one lock, as it does SQLite), so an
async driver would need a loop of its own per call; psycopg also pipelines `executemany`
(one round trip for a slice of rows) and prepares statements it sees repeatedly.
Called by `store.pg.writer` and `store.pg.reader`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import psycopg

from reconciler.errors import FotaError
from reconciler.store.tcp_timeouts import with_tcp_timeouts

Cursor = psycopg.Cursor[tuple[Any, ...]]
Connection = psycopg.Connection[tuple[Any, ...]]


class StoreUnavailable(FotaError):
    """The database cannot be reached or refused us (`fota serve` prints this line)."""


_PLACEHOLDER = re.compile(r"\?(\d*)")


@lru_cache(maxsize=1024)
def to_pyformat(sql: str) -> tuple[str, tuple[int, ...] | None]:
    """`?` and `?N` placeholders as psycopg's `%s` (a literal `%` doubled), with the
    argument index of each when some are numbered (None: in order). Our SQL holds no
    `?` or `%` inside string literals."""
    order: list[int] = []
    numbered = False

    def placeholder(match: re.Match[str]) -> str:
        nonlocal numbered
        if match.group(1):
            numbered = True
            order.append(int(match.group(1)) - 1)
        else:
            order.append(len(order))
        return "%s"

    text = _PLACEHOLDER.sub(placeholder, sql.replace("%", "%%"))
    return text, tuple(order) if numbered else None


def arguments(order: tuple[int, ...] | None, parameters: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(parameters) if order is None else tuple(parameters[i] for i in order)


class QmarkConnection:
    """A psycopg connection seen through `store.sqlconn.SqlConnection`."""

    def __init__(self, raw: Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        text, order = to_pyformat(sql)
        return self.raw.execute(text, arguments(order, parameters))

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> None:
        text, order = to_pyformat(sql)
        rows = [arguments(order, p) for p in parameters]
        if rows:  # psycopg pipelines the rows: one round trip, not one per row
            with self.raw.cursor() as cur:
                cur.executemany(text, rows)

    def close(self) -> None:
        self.raw.close()


def connect(url: str, *, application: str) -> Connection:
    """An autocommit connection (transactions are explicit) with the TCP timeouts the
    URL does not set itself (`with_tcp_timeouts`: the defaults), or StoreUnavailable."""
    try:
        conn: Connection = psycopg.connect(with_tcp_timeouts(url), autocommit=True,
                                           connect_timeout=10, application_name=application)
    except psycopg.Error as exc:
        raise StoreUnavailable(f"cannot connect to {redact(url)}: {exc}") from exc
    return conn


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "the database"
    where = info.get("host") or "localhost"
    return f"postgresql database {info.get('dbname') or '?'} on {where}"
