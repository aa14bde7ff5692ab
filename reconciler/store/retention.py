"""Keeping the event log bounded: which events go, in short slices, and where the
complete part of the feed starts.

An event is due once it is older than `max_age` seconds or more than `max_count` events
behind the newest, except a device's newest `DEVICE_TAIL` (what its views show) while
the device is in the desired state. `prune` deletes what is due one slice (one short
transaction) at a time and records in `meta` the id through which the log was pruned
(`pruned_through`): every event after it is still there, so a feed cursor at or past it
resumes without a gap, and one below it may have missed events. The events kept for a
device's tail below that id are trimmed when the device gets newer ones, and dropped
when the device leaves the desired state.

Called by `SqliteStore.prune_events` (in a worker thread, off the event loop) from the
retention task of `fota serve` (`keep_bounded`); readers learn the start of the
complete feed with `event_log.pruned_through`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from reconciler.store.event_log import PRUNED_THROUGH, last_seq, pruned_through
from reconciler.store.sqlconn import SqlConnection

log = logging.getLogger(__name__)

DEVICE_TAIL = 100  # a device's newest events kept whatever their age: the dashboard
# shows up to 100, /status/devices/{id} 50 (a test holds these in step)
_TRIMMED_THROUGH = "events_trimmed_through"  # devices with events past it: tails to trim
_SWEEP_GENERATION = "events_sweep_generation"  # desired state whose removed devices go
_SWEEP_CURSOR = "events_sweep_cursor"  # how far that sweep got (-1: done)

BACKLOG_PAUSE = 1.0  # seconds between calls while a backlog drains

Tx = Callable[[], AbstractContextManager[SqlConnection]]


@dataclass(frozen=True, slots=True)
class EventRetention:
    max_age: float = 30 * 86400.0  # seconds an event is kept
    max_count: int = 1_000_000  # events kept behind the newest
    slice: int = 500  # rows looked at per transaction: how long a writer can wait on us
    slices: int = 200  # transactions per call: how long one call (and a shutdown) takes


@dataclass(frozen=True, slots=True)
class Pruned:
    deleted: int  # events deleted by this call
    through: int  # the log's pruned_through after it
    more: bool  # the call ran out of slices with work left: call again soon


class _Budget:
    def __init__(self, slices: int) -> None:
        self.left = slices

    def take(self) -> bool:
        self.left -= 1
        return self.left >= 0


# Where a device's tail starts: its DEVICE_TAIL-th newest event (none: it has fewer).
_TAIL_START = "SELECT seq FROM events WHERE device_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?"
# A device's events below the floor that fell out of its tail.
_TRIM_DEVICE = """DELETE FROM events WHERE device_id = ?1 AND seq <= ?2 AND seq < (
    SELECT seq FROM events WHERE device_id = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?3)"""
# Below the floor, one slice of seq order: the events of devices no longer desired.
_SLICE_END = ("SELECT MAX(seq) FROM (SELECT seq FROM events WHERE seq > ? ORDER BY seq "
              "LIMIT ?) AS s")
_DELETE_REMOVED = """DELETE FROM events WHERE seq > ?1 AND seq <= ?2
    AND device_id NOT IN (SELECT device_id FROM devices)"""


def prune(tx: Tx, retention: EventRetention, now: float) -> Pruned:
    """Delete due events, one slice per transaction and at most `retention.slices`
    transactions; returns what it did and whether work is left."""
    with tx() as conn:
        count_cut = last_seq(conn) - retention.max_count
    age_cut = now - retention.max_age
    budget = _Budget(retention.slices)
    tails = _Tails()
    deleted, floor, done = 0, 0, False
    while not done and budget.take():
        with tx() as conn:
            gone, floor, done = _prune_slice(conn, tails, count_cut, age_cut, retention.slice)
        deleted += gone
    if done:
        deleted += _trim_tails(tx, floor, retention.slice, budget)
        deleted += _sweep_removed(tx, floor, retention.slice, budget)
    return Pruned(deleted, floor, budget.left < 0)


class _Tails:
    """Each device's tail start, looked up once per call (DEVICE_TAIL index steps) rather
    than once per event: a device's newer events only move its start up, so a start read
    earlier in the call keeps at most a few more events, never fewer."""

    def __init__(self) -> None:
        self._start: dict[str, float] = {}  # -inf: every event of it may go (not desired)

    def start(self, conn: SqlConnection, device_id: str) -> float:
        found = self._start.get(device_id)
        if found is None:
            desired = conn.execute("SELECT 1 FROM devices WHERE device_id = ?",
                                   (device_id,)).fetchone()
            row = conn.execute(_TAIL_START, (device_id, DEVICE_TAIL - 1)).fetchone()
            found = float("inf") if desired is None else float(row[0]) if row else 0.0
            self._start[device_id] = found
        return found


def _prune_slice(conn: SqlConnection, tails: _Tails, count_cut: int, age_cut: float,
                 size: int) -> tuple[int, int, bool]:
    """The next slice past the floor: (deleted, new floor, nothing more is due). The due
    part is a prefix in seq order: ids grow with time, so the first event that is neither
    old nor far behind ends it. Of it go the events before their device's tail start."""
    floor = pruned_through(conn)
    rows = conn.execute("SELECT seq, at, device_id FROM events WHERE seq > ? ORDER BY seq "
                        "LIMIT ?", (floor, size)).fetchall()
    due: list[tuple[int]] = []
    hi = 0
    for seq, at, device_id in rows:
        if seq > count_cut and at >= age_cut:
            break
        hi = seq
        if seq < tails.start(conn, device_id):
            due.append((seq,))
    if hi == 0:
        return 0, floor, True
    conn.executemany("DELETE FROM events WHERE seq = ?", due)
    _set_meta_int(conn, PRUNED_THROUGH, hi)
    return len(due), hi, hi != rows[-1][0] or len(rows) < size


def _trim_tails(tx: Tx, floor: int, size: int, budget: _Budget) -> int:
    """The devices with events since the last trim may have pushed older ones out of
    their tail: delete those below the floor, a slice of new events at a time."""
    if floor == 0:  # nothing was ever pruned, so nothing lies below: no device to look at
        with tx() as conn:
            _set_meta_int(conn, _TRIMMED_THROUGH, last_seq(conn))
        return 0
    deleted = 0
    trimmed: set[str] = set()  # the floor holds during a call: one trim per device
    while budget.take():
        with tx() as conn:
            since = _meta_int(conn, _TRIMMED_THROUGH)
            rows = conn.execute("SELECT seq, device_id FROM events WHERE seq > ? "
                                "ORDER BY seq LIMIT ?", (since, size)).fetchall()
            for device in {device for _, device in rows} - trimmed:
                trimmed.add(device)
                deleted += int(conn.execute(_TRIM_DEVICE, (device, floor,
                                                           DEVICE_TAIL - 1)).rowcount)
            if rows:
                _set_meta_int(conn, _TRIMMED_THROUGH, int(rows[-1][0]))
        if len(rows) < size:
            break
    return deleted


def _sweep_removed(tx: Tx, floor: int, size: int, budget: _Budget) -> int:
    """Once per desired state: the tails below the floor of devices it no longer has,
    from a cursor kept in meta, so a sweep cut short by the budget goes on next time."""
    with tx() as conn:
        generation = _meta_int(conn, "desired_generation")
        cursor = _meta_int(conn, _SWEEP_CURSOR)
        if _meta_int(conn, _SWEEP_GENERATION) != generation:
            cursor = 0  # a new desired state: sweep from the start
        elif cursor < 0:
            return 0  # this desired state was swept
    deleted = 0
    while cursor < floor and budget.take():
        with tx() as conn:
            end = conn.execute(_SLICE_END, (cursor, size)).fetchone()[0]
            end = floor if end is None else min(int(end), floor)
            deleted += int(conn.execute(_DELETE_REMOVED, (cursor, end)).rowcount)
            _set_meta_int(conn, _SWEEP_GENERATION, generation)
            _set_meta_int(conn, _SWEEP_CURSOR, end)
        cursor = end
    if cursor >= floor:
        with tx() as conn:
            _set_meta_int(conn, _SWEEP_GENERATION, generation)
            _set_meta_int(conn, _SWEEP_CURSOR, -1)
    return deleted


def _meta_int(conn: SqlConnection, key: str) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return int(row[0]) if row else 0


def _set_meta_int(conn: SqlConnection, key: str, value: int) -> None:
    conn.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                 "SET value = excluded.value", (key, str(value)))


class Prunable(Protocol):
    def prune_events(self, retention: EventRetention, now: float) -> Pruned: ...


async def keep_bounded(store: Prunable, retention: EventRetention, interval: float,
                       stop: asyncio.Event, clock: Callable[[], float]) -> None:
    """Prune every `interval` seconds until `stop`, in a worker thread: the event loop
    never runs a delete, and a writer waits for one slice at most. A call that ran out
    of slices is followed by the next one after `BACKLOG_PAUSE` (a large backlog, e.g.
    on first start, drains in steps that leave the writer room). A failed call is logged
    and tried again at the next interval."""
    while not stop.is_set():
        pause = interval
        try:
            done = await asyncio.to_thread(store.prune_events, retention, clock())
        except _engine_errors() as exc:  # either engine's store
            log.warning("pruning the event log failed: %s; trying again in %gs", exc,
                        interval)
        else:
            if done.deleted:
                log.info("pruned %d events (the log is complete after event %d)",
                         done.deleted, done.through)
            pause = min(interval, BACKLOG_PAUSE) if done.more else interval
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=pause)


def _engine_errors() -> tuple[type[Exception], ...]:
    """sqlite3's errors, and psycopg's once a PostgreSQL store loaded it: a SQLite
    server never imports psycopg (a quarter of a second of every start)."""
    psycopg = sys.modules.get("psycopg")
    return (sqlite3.Error,) if psycopg is None else (sqlite3.Error, psycopg.Error)
