"""`Reloads`: the devices a Register moved to this node from another one (or that this
node had not held since it started), their progress records and reports read back from
the store in batches.

Before this node decides anything about such a device it must read what another node
wrote of it (a download it started, an Execute it recorded). Read a device at a time
on the event loop, that was two queries per Register (the record at the Register, the
report at its first decision), most of a node's cost per Register while a fleet
registers or a dead node's devices come over (issue 13). Here those devices wait, and
one task reads the records and reports of up to `BATCH` of them at once in a worker
thread (two queries), hands them to the Decider (`reloaded`) and to the report cache
(`fill`, absence included, so a silent device's first decision asks nothing more), and
wakes their reconciles. Until then a reconcile of a waiting device does nothing
(`holds`); the batch wakes it. A failed read is retried after a growing delay (at most
`RETRY_MAX`) while the devices wait, as a node cut off from the store parks them.
Built and used by the Controller (`on_registration`, `reconcile_device`, `run`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from reconciler import heap
from reconciler.model.observed import DeviceProgress, DeviceReport

log = logging.getLogger(__name__)

BATCH = 500  # devices a batch reads: two queries (the store's IN lists take 500)
RETRY_FIRST, RETRY_MAX = 0.5, 5.0  # seconds before a failed read is tried again


class Records(Protocol):
    """The store's part (`reconciler.store.Store` has it); called in a worker thread."""

    def progress_of(self, device_ids: Sequence[str]) -> dict[str, DeviceProgress]: ...
    def reports(self, device_ids: Sequence[str]) -> dict[str, DeviceReport]: ...


class Reloaded(Protocol):
    """The Decider's part: False when a retarget holds the device (it reloads it)."""

    def reloaded(self, device_id: str, progress: DeviceProgress | None) -> bool: ...


class Primed(Protocol):
    """The report cache's part (`controller.reports.Reports`)."""

    def forget(self, device_id: str) -> None: ...
    def fill(self, device_id: str, report: DeviceReport | None) -> None: ...


class Reloads:
    def __init__(self, store: Records, decider: Reloaded, reports: Primed,
                 wake: Callable[[list[str]], None]) -> None:
        self._store, self._decider, self._reports, self._wake = store, decider, reports, wake
        # device -> the number of its latest move here: one that moves again while its
        # batch is read is read again (what the batch read may predate the move).
        self._waiting: dict[str, int] = {}
        self._size = heap.Shrinker()  # a failover's 100,000 leave no table that size
        self._moves = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def holds(self, device_id: str) -> bool:
        """Whether the device waits for its records (its reconcile waits for the batch)."""
        return device_id in self._waiting

    def add(self, device_id: str) -> None:
        """A Register moved the device here: read its records before deciding on it."""
        self._waiting[device_id] = next(self._moves)
        self._size.added(self._waiting)
        self._reports.forget(device_id)  # what a notification merges meanwhile is newer
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._drain(), name="controller-reloads")

    async def settled(self) -> None:
        """Until every device added so far has its records (tests, shutdown)."""
        while self._task is not None:
            await asyncio.wait({self._task})

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})

    async def _drain(self) -> None:
        delay, failing = RETRY_FIRST, False
        try:
            while self._waiting and not self._closed:
                batch = dict(itertools.islice(self._waiting.items(), BATCH))
                try:
                    progress, reports = await asyncio.to_thread(self._read, list(batch))
                except Exception as exc:  # the store's errors: the devices wait
                    if not failing:
                        log.warning("reading %d devices that came from other nodes failed "
                                    "(%s: %s); retrying", len(batch), type(exc).__name__, exc)
                    failing = True
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
                    continue
                delay, failing = RETRY_FIRST, False
                self._apply(batch, progress, reports)
        finally:
            self._task = None

    def _read(self, device_ids: list[str]) -> tuple[dict[str, DeviceProgress],
                                                    dict[str, DeviceReport]]:
        return self._store.progress_of(device_ids), self._store.reports(device_ids)

    def _apply(self, batch: dict[str, int], progress: dict[str, DeviceProgress],
               reports: dict[str, DeviceReport]) -> None:
        woken: list[str] = []
        for device_id, move in batch.items():
            if self._waiting.get(device_id) != move:
                continue  # it moved again meanwhile: the next batch reads it
            del self._waiting[device_id]
            if self._decider.reloaded(device_id, progress.get(device_id)):
                self._reports.fill(device_id, reports.get(device_id))
            woken.append(device_id)
        self._size.removed(self._waiting)
        self._wake(woken)
