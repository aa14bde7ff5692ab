"""The append-only event log read as a feed, and the in-process wakeup of its readers.

`events_after(conn, after, ...)` pages the log in `seq` order from a cursor, filtered by
collection and/or device through an index each, and `pruned_through(conn)` says where the
complete part of the log starts (`retention` prunes it); `SqliteReader` and `SqliteStore`
expose both. `EventHub` is how readers in the writer's process learn that events were appended:
the writer publishes after every commit that appended some, and subscribers (the API's
`/events`, the notifiers) await that instead of polling the file on a timer.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from reconciler.store.sqlconn import SqlConnection

MAX_PAGE = 1000  # the most one call returns, whatever the caller asks for
PRUNED_THROUGH = "events_pruned_through"  # meta key: see pruned_through

_COLUMNS = "seq, device_id, collection_id, at, kind, message, revision"


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One line of the log with its position (`seq`, the feed's cursor) and the
    collection the device belonged to when it was written."""

    seq: int
    device_id: str
    collection_id: str | None
    at: float
    kind: str
    message: str
    revision: str


def events_after(conn: SqlConnection, after: int, *, collection: str | None = None,
                 device: str | None = None, limit: int = 100) -> list[EventRecord]:
    """Up to `limit` (capped at MAX_PAGE) events with seq > `after`, oldest first."""
    where: list[str] = ["seq > ?"]
    args: list[object] = [after]
    if collection is not None:
        where.append("collection_id = ?")
        args.append(collection)
    if device is not None:
        where.append("device_id = ?")
        args.append(device)
    sql = (f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} "
           "ORDER BY seq LIMIT ?")
    rows = conn.execute(sql, (*args, max(0, min(limit, MAX_PAGE)))).fetchall()
    return [EventRecord(*r) for r in rows]


def last_seq(conn: SqlConnection) -> int:
    """The newest event's seq (0 for an empty log): where a feed that wants only what
    comes next starts."""
    row = conn.execute("SELECT MAX(seq) FROM events").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def pruned_through(conn: SqlConnection) -> int:
    """The id through which the log was pruned (`retention.prune`), 0 when it never was:
    every event after it is kept, so a cursor at or past it misses nothing, and one below
    it may have missed events (a device's newest ones below it are kept)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (PRUNED_THROUGH,)).fetchone()
    return int(row[0]) if row else 0


class EventFeed:
    """`events_after` and `last_event_seq` for a store class that holds a connection
    (`_conn`) and the lock that serialises it (`_lock`): the reader and the writer."""

    _conn: SqlConnection
    _lock: threading.Lock

    def events_after(self, after: int, *, collection: str | None = None,
                     device: str | None = None, limit: int = 100) -> list[EventRecord]:
        """The event log from a cursor, oldest first (see `events_after`)."""
        with self._lock:
            return events_after(self._conn, after, collection=collection, device=device,
                                limit=limit)

    def last_event_seq(self) -> int:
        with self._lock:
            return last_seq(self._conn)

    def events_pruned_through(self) -> int:
        """Where the complete feed starts (see `pruned_through`)."""
        with self._lock:
            return pruned_through(self._conn)


class Subscription:
    """One reader's wakeup flag, bound to the event loop that subscribed.

    `wait` returns True once events were published since the last wake (the flag is
    cleared as it returns, before the caller queries: a commit after that sets it again,
    so none is missed) or False after `timeout`."""

    def __init__(self, hub: EventHub, loop: asyncio.AbstractEventLoop) -> None:
        self._hub = hub
        self.loop = loop
        self._flag = asyncio.Event()

    async def wait(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._flag.wait()
        except TimeoutError:
            return False
        self._flag.clear()
        return True

    def wake(self) -> None:
        """Only on `self.loop`'s thread (asyncio.Event is not thread safe)."""
        self._flag.set()

    def close(self) -> None:
        self._hub.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class EventHub:
    """Wakes every subscriber after a commit that appended events; `publish` may be
    called from any thread (the writer runs on the loop and in worker threads). One
    hop per subscribing loop, not per subscriber, so many readers cost one wakeup."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_loop: dict[asyncio.AbstractEventLoop, set[Subscription]] = {}
        self._closed = False

    @property
    def closed(self) -> bool:
        """Set by `close()` at shutdown: a woken subscriber that sees it stops reading."""
        return self._closed

    def subscribe(self) -> Subscription:
        """A subscription on the running loop; close it (or use it as a context manager)."""
        sub = Subscription(self, asyncio.get_running_loop())
        with self._lock:
            self._by_loop.setdefault(sub.loop, set()).add(sub)
            if self._closed:
                sub.wake()
        return sub

    def close(self) -> None:
        """The process is shutting down: wake every subscriber once more, for good, so
        long-lived readers (SSE streams) end instead of holding the server open."""
        self._closed = True
        self.publish()

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._by_loop.get(sub.loop)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_loop[sub.loop]

    def subscribers(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._by_loop.values())

    def publish(self) -> None:
        with self._lock:
            groups = [(loop, tuple(subs)) for loop, subs in self._by_loop.items()]
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop, subs in groups:
            if loop is running:
                _wake(subs)
            else:
                try:
                    loop.call_soon_threadsafe(_wake, subs)
                except RuntimeError:  # that loop closed without unsubscribing: skip it
                    continue


def _wake(subs: tuple[Subscription, ...]) -> None:
    for sub in subs:
        sub.wake()
