"""A busy node keeps its leadership and its lease (issue 13, the leader stall seen
once): the leader's lock renewal and the node's heartbeat each run in a thread of their
own, so work queued in the event loop's shared worker threads (a big revision's apply,
the store's reads, a follower waiting for the leader) cannot make them time out
before they have even started. Real PostgreSQL for the leadership, a real SQLite file
for the heartbeat; every shared worker thread is held busy meanwhile."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from reconciler.cluster.lease import NodeLease
from reconciler.store import open_store
from reconciler.store.pg.leader import PgLeadership

LEASE = 1.5  # each step may take a third of it
SHARED = 40  # more than the loop's default executor ever runs at once (32)


@asynccontextmanager
async def _every_worker_thread_busy() -> AsyncIterator[None]:
    release = threading.Event()
    busy = [asyncio.ensure_future(asyncio.to_thread(release.wait, 30))
            for _ in range(SHARED)]
    try:
        yield
    finally:
        release.set()
        await asyncio.gather(*busy)


async def test_the_leader_takes_and_renews_its_lock_while_the_worker_threads_are_busy(
        pg_url: str) -> None:
    open_store(pg_url).close()  # the schema (its meta table holds the lease)
    leadership, stop = PgLeadership(pg_url, "n1", LEASE), asyncio.Event()
    try:
        async with _every_worker_thread_busy():
            await leadership.settle()
            took = leadership.leader
            await leadership.settle()
            renewed = leadership.leader
    finally:
        stop.set()
        await leadership.run(stop)  # closes its session
    assert took and renewed


async def test_a_busy_nodes_heartbeat_lands_while_the_worker_threads_are_busy(
        tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    lease, stop = NodeLease(store.heartbeat, "n1", LEASE), asyncio.Event()
    try:
        async with _every_worker_thread_busy():
            landed = await lease.beat_once()
    finally:
        stop.set()
        await lease.run(stop)
        store.close()
    assert landed and lease.held
