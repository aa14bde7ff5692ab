"""`PgLeadership`: which node applies desired revisions to a shared PostgreSQL database.

A session advisory lock on a connection of its own: the node whose session holds it is
the leader, and PostgreSQL releases it when that session ends (the process died, its
connection closed). A holder that stops renewing without its session ending (a node
frozen or cut off while its TCP connection lingers) is why there is a lease too: the
leader writes `leader` (node, until) into `meta` every third of the lease, and counts
itself the leader only while its last renewal is younger than the lease; a node that
finds the lock held but the lease run out ends the holder's session
(`pg_terminate_backend`), which releases the lock, and takes it. Each step runs on the
session's own thread (`SideThread`), bounded by a third of the lease: a step that hangs
on a database that stopped answering holds that one thread (the next steps miss at
once), and closing the session after it waits there for it to return, never using the
connection beside it. Built by
`serve.nodes` for a `postgresql://` state; `reconciler.cluster.leadership` is the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable

import psycopg

from reconciler.side_thread import SideThread, StillRunning
from reconciler.store.pg.connection import Connection, connect

log = logging.getLogger("reconciler.cluster")
LEADER_LOCK = 0x666F7461_6C656164  # "fotalead"
# pg_locks shows a bigint advisory key as two 32-bit halves
_HOLDER = ("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
           "AND objid = %s AND objsubid = 1 AND granted AND pid <> pg_backend_pid()")
_LEASE = ("INSERT INTO meta VALUES ('leader', %s) ON CONFLICT (key) "
          "DO UPDATE SET value = excluded.value")


class PgLeadership:
    def __init__(self, url: str, node: str, lease: float,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._url, self.node, self.lease = url, node, lease
        self._clock, self._monotonic = clock, monotonic
        self._conn: Connection | None = None
        self._holding = False  # our session holds the lock
        self._renewed = float("-inf")  # monotonic time of our last lease renewal
        self._stale_since: float | None = None  # when the holder's lease was seen run out
        self._thread = SideThread(f"fota-leader-{node}")  # the session is used only here

    @property
    def leader(self) -> bool:
        return self._holding and self._monotonic() - self._renewed < self.lease

    async def settle(self) -> None:
        await self._step()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                await self._step()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.lease / 3)
        finally:
            await self._thread.close(self._close, timeout=self.lease / 3)

    async def _step(self) -> None:
        was = self.leader
        try:
            await self._thread.call(self.tick, timeout=self.lease / 3)
        except Exception as exc:  # cut off, or too slow: leadership lapses with the lease
            log.warning("node %s: leadership check failed (%s: %s)", self.node,
                        type(exc).__name__, exc)
            if not isinstance(exc, StillRunning):  # one close queued per stuck step
                self._thread.later(self._close)  # once the step returns, never beside it
        if self.leader != was:
            log.warning("node %s %s the leader", self.node, "is now" if self.leader
                        else "is no longer")

    def tick(self) -> None:
        """Take the lock if free (or its holder's lease ran out), renew the lease if ours."""
        conn = self._session()
        if not self._holding:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK,)).fetchone()
            self._holding = bool(row and row[0])
            if not self._holding:
                self._end_stale_holder(conn)
                return
        now = self._clock()
        conn.execute(_LEASE, (json.dumps({"node": self.node, "until": now + self.lease}),))
        self._renewed = self._monotonic()

    def _end_stale_holder(self, conn: Connection) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key = 'leader'").fetchone()
        lease = json.loads(row[0]) if row else {}
        if float(lease.get("until", 0)) >= self._clock():
            self._stale_since = None
            return  # the holder renews: it leads
        # A holder that took the lock an instant ago has not written its lease yet:
        # only one seen stale for a whole lease is ended.
        if self._stale_since is None:
            self._stale_since = self._monotonic()
        if self._monotonic() - self._stale_since < self.lease:
            return
        self._stale_since = None
        high, low = divmod(LEADER_LOCK, 1 << 32)
        for (pid,) in conn.execute(_HOLDER, (high, low)).fetchall():
            log.warning("node %s: leader %s stopped renewing its lease; ending its session",
                        self.node, lease.get("node", "?"))
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))

    def _session(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._close()
            self._conn = connect(self._url, application=f"fota-leader {self.node}")
        return self._conn

    def _close(self) -> None:
        self._holding = False
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
