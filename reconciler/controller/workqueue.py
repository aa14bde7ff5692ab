"""A keyed, level-triggered work queue (the shape of controller-runtime's workqueue).

Triggers only `add(key)`; a key waiting in the queue is held once however often it is
added, a key being processed is marked dirty and processed again afterwards, so one key
never runs twice at once and a duplicated trigger costs at most one extra reconcile.
`add(key, at=t)` schedules a look at wall-clock time `t` (the earliest wins).
`add_background(keys)` is for bulk work (a resync of every device, a revision that
retargets 200,000): those keys go to the workers only while fewer than one per worker is
waiting, so a registration or a notification never waits behind a pass. A handler
returns a `Requeue` (look again after a delay, always > 0) or None (only on a trigger),
like controller-runtime's `Result{RequeueAfter}`; an exception retries the key with
exponential backoff. Used by the controller; knows nothing about devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from reconciler import heap

log = logging.getLogger("reconciler.queue")


@dataclass(frozen=True, slots=True)
class Requeue:
    """Look at the key again `after` seconds from now. Never "now": a handler that could
    ask for that would spin a key that keeps wanting more work."""

    after: float

    def __post_init__(self) -> None:
        if not self.after > 0:  # also rejects NaN
            raise ValueError(f"a requeue needs a delay > 0, not {self.after!r}")


Handler = Callable[[str], Awaitable[Requeue | None]]  # None: only on a trigger


class WorkQueue:
    def __init__(self, handler: Handler, *, workers: int = 16, backoff: float = 1.0,
                 backoff_max: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self._handler = handler
        self._workers = workers
        self._backoff, self._backoff_max = backoff, backoff_max
        self._clock = clock
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()  # in _ready, not yet taken
        self._active: set[str] = set()  # being processed
        self._dirty: set[str] = set()  # added while active: run again afterwards
        self._timers: list[tuple[float, str]] = []  # (at, key) heap
        self._due: dict[str, float] = {}  # key -> earliest scheduled time
        self._failures: dict[str, int] = {}
        self._background: deque[str] = deque()  # bulk keys, fed when workers have room
        self._waiting: set[str] = set()  # of those, the ones not yet fed nor triggered
        self._room = asyncio.Event()  # a worker took a key, or bulk keys arrived
        # A set or dict never gives back the table it grew to (200,000 keys of one big
        # revision): each is rebuilt once it holds a quarter of its peak (`heap`).
        self._queued_size, self._due_size = heap.Shrinker(), heap.Shrinker()
        self._waiting_size = heap.Shrinker()
        self._failures_size = heap.Shrinker()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, key: str, at: float | None = None) -> None:
        """Look at `key` now, or at wall-clock time `at` if that is later."""
        if at is not None and at > self._clock():
            if at < self._due.get(key, float("inf")):
                self._due[key] = at
                self._due_size.added(self._due)
                heapq.heappush(self._timers, (at, key))
                self._wakeup.set()
            return
        self._idle.clear()
        if key in self._waiting:  # triggered: the bulk copy is skipped when fed
            self._waiting.discard(key)
            self._waiting_size.removed(self._waiting)
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queued_size.added(self._queued)
            self._ready.put_nowait(key)

    def add_all(self, keys: list[str]) -> None:
        for key in keys:
            self.add(key)

    def add_background(self, keys: Iterable[str]) -> None:
        """Look at `keys` once nothing triggered waits for a worker (see the module)."""
        for key in keys:
            if key not in self._waiting and key not in self._queued:
                self._waiting.add(key)
                self._background.append(key)
        self._waiting_size.added(self._waiting)
        if self._waiting:
            self._idle.clear()
            self._room.set()

    def __len__(self) -> int:
        return len(self._queued) + len(self._active) + len(self._waiting)

    async def idle(self) -> None:
        """Return once nothing is queued or running (scheduled looks may remain)."""
        await self._idle.wait()

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [asyncio.create_task(self._worker(), name=f"reconcile-{i}")
                 for i in range(self._workers)]
        tasks.append(asyncio.create_task(self._timer(), name="reconcile-timer"))
        tasks.append(asyncio.create_task(self._feed(), name="reconcile-feed"))
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _timer(self) -> None:
        while True:
            now = self._clock()
            while self._timers and self._timers[0][0] <= now:
                at, key = heapq.heappop(self._timers)
                if self._due.get(key) == at:
                    del self._due[key]
                    self._due_size.removed(self._due)
                    self.add(key)
            self._wakeup.clear()
            delay = self._timers[0][0] - now if self._timers else 3600.0
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
            # cancel that stops the queue when the wakeup fires at the same moment, and
            # the timer then sleeps on (seen: shutdown held for its whole grace period).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(delay, 0.001)):
                    await self._wakeup.wait()

    async def _feed(self) -> None:
        """Bulk keys to the workers, never more than one per worker ahead of a trigger."""
        while True:
            while self._background and self._ready.qsize() < self._workers:
                key = self._background.popleft()
                if key in self._waiting:  # else triggered meanwhile: already handled
                    self._waiting.discard(key)
                    self.add(key)
            self._waiting_size.removed(self._waiting)
            if not self._background:
                self._end_if_idle()
            self._room.clear()
            await self._room.wait()

    def _end_if_idle(self) -> None:
        if not self._queued and not self._active and not self._waiting:
            self._idle.set()

    async def _worker(self) -> None:
        while True:
            key = await self._ready.get()
            self._room.set()
            self._queued.discard(key)
            self._queued_size.removed(self._queued)
            self._active.add(key)
            try:
                await self._process(key)
                # A reconcile that only decides finishes without awaiting anything, and
                # Queue.get() does not yield while keys are ready: without this, 200,000
                # keys of one revision would hold the loop for seconds.
                await asyncio.sleep(0)
            finally:
                self._active.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)
                else:
                    self._end_if_idle()

    async def _process(self, key: str) -> None:
        try:
            again = await self._handler(key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            self._failures_size.added(self._failures)
            delay = min(self._backoff_max, self._backoff * 2 ** (failures - 1))
            # A device that never answers fails here for as long as it stays registered:
            # the 1st, 2nd, 4th, 8th ... failure of a streak is a warning, the rest debug,
            # so what an outsider can cause grows the log only logarithmically.
            level = logging.WARNING if failures & (failures - 1) == 0 else logging.DEBUG
            log.log(level, "%s: reconcile failed (%s: %s; %d in a row); again in %.1fs",
                    key, type(exc).__name__, exc, failures, delay)
            self.add(key, self._clock() + delay)
            return
        if self._failures.pop(key, None) is not None:
            self._failures_size.removed(self._failures)
        if again is not None:
            self.add(key, self._clock() + again.after)
