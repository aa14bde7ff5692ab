"""One transaction of the PostgreSQL writer sent in as few round trips as it allows.

A write such as `put_progress` (an upsert and its events) needs none of its statements'
results, yet a statement per round trip (with BEGIN and COMMIT, four) made each write
wait on the database server four times: on a busy machine that wait, not the work, was
most of a rollout's cost against SQLite's in-process calls. `Batch` renders each
statement with its arguments client-side (psycopg's `ClientCursor`, which quotes every
value) and holds it; a caller that asks for a statement's result (its rows, its
rowcount) sends everything held up to it as one message, and the end of the transaction
sends what is left with the COMMIT. So a write whose results nobody reads is one round
trip, BEGIN to COMMIT. Used by `PgStore._write`; reads outside writes stay as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg

from reconciler.store.pg.connection import Connection, arguments, to_pyformat


class Pending:
    """A statement held by the batch: its results, once the batch sent it."""

    def __init__(self, batch: Batch, text: str) -> None:
        self._batch = batch
        self.text = text
        self.sent = False
        self._rowcount = -1
        self._rows: list[Any] = []

    def settle(self, rowcount: int, rows: list[Any]) -> None:
        self.sent, self._rowcount, self._rows = True, rowcount, rows

    def _results(self) -> None:
        if not self.sent:
            self._batch.send()

    @property
    def rowcount(self) -> int:
        self._results()
        return self._rowcount

    def fetchone(self) -> Any:
        self._results()
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        self._results()
        return list(self._rows)

    def __iter__(self) -> Iterator[Any]:
        self._results()
        return iter(list(self._rows))


class Batch:
    """`store.sqlconn.SqlConnection` over one transaction of a psycopg session."""

    def __init__(self, raw: Connection, *, durable: bool, ordered: bool = True) -> None:
        self.raw = raw
        self._cursor = psycopg.ClientCursor(raw)
        self._held: list[Pending] = []
        # SET LOCAL: only this transaction waits for its commit to be flushed to disk.
        # Then, `ordered`, the tallies' one-row counter, which every write of progress,
        # devices or reports updates (a trigger) and holds until its commit: taken
        # first, it orders the writers of every node before any of their rows, where
        # taking it at a row's trigger deadlocked two nodes' writes (each held a row the
        # other wanted, 1 s lost to detection each time, and the loser's reconcile
        # failed). A transaction that writes one row and none the tallies count (a
        # Register's claim, an Update, a heartbeat) holds nothing another waits for
        # while it waits itself, so it joins no such cycle and skips the queue.
        self._opening: str | None = "; ".join(
            ["BEGIN", *(["SET LOCAL synchronous_commit = on"] if durable else []),
             *(["SELECT n FROM change_seq FOR UPDATE"] if ordered else [])])

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Pending:
        text, order = to_pyformat(sql)
        rendered = self._cursor.mogrify(text, arguments(order, parameters))
        pending = Pending(self, rendered)
        self._held.append(pending)
        return pending

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> None:
        for row in parameters:
            self.execute(sql, row)

    def send(self, closing: str | None = None) -> None:
        """Everything held in one message: after BEGIN the first time, before `closing`."""
        opening = self._opening.split("; ") if self._opening else []
        held, self._held = self._held, []
        parts = [*opening, *(p.text for p in held), *([closing] if closing else [])]
        self._cursor.execute(";\n".join(parts))
        self._opening = None
        for _ in opening:  # their results come first: step past them
            self._cursor.nextset()
        for pending in held:
            rows = self._cursor.fetchall() if self._cursor.description else []
            pending.settle(self._cursor.rowcount, rows)
            self._cursor.nextset()

    def commit(self) -> None:
        if self._opening is not None and not self._held:
            return  # nothing was written: no transaction to send
        self.send("COMMIT")

    def rollback(self) -> None:
        """After a failure: end the transaction if the server has one open."""
        self._held = []
        if self.raw.broken or self.raw.closed:
            return
        if self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self.raw.execute("ROLLBACK")

    def close(self) -> None:  # the session outlives the transaction
        return None
