"""A node acts on devices only while its store hears from it (issue 13, item 4): the
lease runs out a lease after the last heartbeat that landed, the reason is what /readyz
shows, and the devices parked meanwhile are handed back once heartbeats land again."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from reconciler.cluster.lease import NodeLease


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Store:
    """Heartbeats into a list, or refused like a cut connection."""

    def __init__(self) -> None:
        self.cut = False
        self.beats: list[tuple[str, float, float]] = []

    def heartbeat(self, node: str, now: float, lease: float) -> None:
        if self.cut:
            raise ConnectionError("connection refused")
        self.beats.append((node, now, lease))


async def test_a_node_cut_off_stops_acting_within_a_lease_and_says_why(
        caplog: pytest.LogCaptureFixture) -> None:
    clock, store = Clock(), Store()
    lease = NodeLease(store.heartbeat, "node-a", 6.0, clock=clock, monotonic=clock)
    assert await lease.beat_once() and lease.held and lease.reason() is None
    store.cut = True
    clock.now += 5.9
    assert not await lease.beat_once()
    assert lease.held  # still within the lease of the last heartbeat that landed
    clock.now += 0.2
    assert not lease.held
    assert not await lease.beat_once()
    assert not await lease.beat_once()
    assert lease.reason() == ("store unreachable since 1970-01-01T00:16:46Z: not acting "
                              "on devices (lease 6s)")
    lost = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(lost) == 1 and "node-a lost its lease" in lost[0].getMessage()
    assert store.beats == [("node-a", 1000.0, 6.0)]


async def test_devices_parked_while_the_lease_was_lost_are_handed_back_once() -> None:
    clock, store, handed = Clock(), Store(), []
    lease = NodeLease(store.heartbeat, "node-a", 3.0, clock=clock, monotonic=clock)
    lease.on_regained = handed.append
    store.cut = True
    clock.now += 4
    assert not await lease.beat_once()
    for device in ("d2", "d1", "d2"):
        lease.park(device)
    store.cut = False
    assert await lease.beat_once() and lease.held
    assert await lease.beat_once()
    assert handed == [["d1", "d2"]]


async def test_a_heartbeat_that_hangs_holds_one_thread_and_the_next_beats_miss() -> None:
    """A database that stops answering: the heartbeat blocks past its timeout. Before,
    each period started one more blocked thread in the shared pool; now the beats due
    while it hangs miss at once, and the one that hung lands when it returns."""
    clock, calls = Clock(), []
    release, entered = threading.Event(), threading.Event()

    def hanging(node: str, now: float, lease: float) -> None:
        calls.append(threading.get_ident())
        entered.set()
        release.wait(10)

    lease = NodeLease(hanging, "node-a", 0.3, clock=clock)
    try:
        assert not await lease.beat_once()  # timed out after 0.1 s: still running
        assert entered.is_set()
        for _ in range(5):
            assert not await lease.beat_once()  # missed at once: nothing new started
        assert len(calls) == 1
        release.set()
        running = lease._thread._running
        assert running is not None
        await asyncio.wrap_future(running)  # the hung heartbeat returns
        assert await lease.beat_once() and len(calls) == 2
        assert len(set(calls)) == 1  # the lease's own thread, not the shared pool
    finally:
        release.set()
        await lease._thread.close(lambda: None, timeout=5)
