"""One leader at a time on a real PostgreSQL (issue 13: desired state applied once per
revision) when a leadership step outlives its timeout: the step has just taken the
advisory lock and read the answer when its node gives the step up and closes the session
(which releases the lock). Whatever order the step's end and the close take, a node that
counts itself the leader holds the lock in its own live session, and never two do; and
once the stalled step has returned and its session closed (the lock free), the next
steps elect one."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import psycopg

from reconciler.store import open_store
from reconciler.store.pg.connection import Connection
from reconciler.store.pg.leader import LEADER_LOCK, PgLeadership

LEASE = 0.6  # each step is bounded by a third of it


class Answered:
    def __init__(self, row: Any) -> None:
        self.row = row

    def fetchone(self) -> Any:
        return self.row


class Paused:
    """A session that stops just after it took the lock (its answer read), until `go`."""

    def __init__(self, conn: Connection, took: threading.Event, go: threading.Event) -> None:
        self.conn, self.took, self.go = conn, took, go

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        cursor = self.conn.execute(sql, args)
        if "pg_try_advisory_lock" not in sql or self.go.is_set():
            return cursor
        answer = Answered(cursor.fetchone())
        self.took.set()
        self.go.wait(10)
        return answer


class SlowStep(PgLeadership):
    def __init__(self, url: str, node: str) -> None:
        super().__init__(url, node, LEASE)
        self.took, self.go = threading.Event(), threading.Event()
        self.closed = threading.Event()  # the session closed after the stalled step went on

    def _session(self) -> Any:
        return Paused(super()._session(), self.took, self.go)

    def _close(self) -> None:
        super()._close()
        # The first close once `go` is set is the one queued behind the stalled step
        # (steps asked meanwhile fail with StillRunning, queueing nothing).
        if self.go.is_set():
            self.closed.set()


def holder(url: str) -> int | None:
    """The backend pid whose session holds the leader's advisory lock."""
    high, low = divmod(LEADER_LOCK, 1 << 32)
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND "
                           "classid = %s AND objid = %s AND granted", (high, low)).fetchone()
    return None if row is None else int(row[0])


def one_true_leader(url: str, nodes: Sequence[PgLeadership]) -> None:
    leaders = [node for node in nodes if node.leader]
    assert len(leaders) <= 1, [node.node for node in leaders]
    for node in leaders:  # a leader's own session holds the lock
        assert node._conn is not None and holder(url) == node._conn.info.backend_pid


async def test_a_step_that_outlives_its_timeout_never_makes_two_leaders(pg_url: str) -> None:
    open_store(pg_url).close()  # the schema (its `meta` table holds the leader's lease)
    slow, other = SlowStep(pg_url, "a"), PgLeadership(pg_url, "b", LEASE)
    try:
        await slow.settle()  # takes the lock, then stalls past the step's timeout
        # Under load the connect alone may outlast the step: it takes the lock later.
        assert await asyncio.to_thread(slow.took.wait, LEASE) and not slow.leader
        slow.go.set()  # the stalled step goes on, after its node gave it up
        for _ in range(3):  # steps racing the stalled step's end and its close
            await other.settle()
            one_true_leader(pg_url, (slow, other))
            await slow.settle()
            one_true_leader(pg_url, (slow, other))
        # Those steps may all come before the stalled step's lease write and close (a few
        # ms under load): the lock is free only after the close, and a leader follows at
        # the next step that ends within its third of the lease.
        assert await asyncio.to_thread(slow.closed.wait, LEASE)
        deadline = time.monotonic() + 2 * LEASE  # six steps' timeouts
        while not (slow.leader or other.leader) and time.monotonic() < deadline:
            for node in (other, slow):
                await node.settle()
                one_true_leader(pg_url, (slow, other))
        assert slow.leader or other.leader
    finally:
        slow.go.set()
        await slow._thread.close(slow._close, timeout=5)
        await other._thread.close(other._close, timeout=5)
