"""A revision's new targets, written off the event loop without ever landing stale.

The decider retargets a slice of devices on the loop (it reads the rollout index, the
reports and the registrations there, and updates the index at once); committing their
records was the longest pause a 200,000-device revision gave the loop (a slice's COMMIT,
151 ms). `HeldWrites.land` commits a slice in a worker thread instead and holds its
devices meanwhile: a reconcile of a held device is deferred (the decider asks `holds`
and calls `defer` instead of deciding), so no newer record of it can be written before
the slice's older one, which would then overwrite it. Once the slice has committed, the
deferred devices go back to the work queue (`release`). Owned by `Decider`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.model.observed import DeviceEvent, DeviceProgress
from reconciler.model.status import Condition


@dataclass(frozen=True, slots=True)
class RetargetSlice:
    """What one slice of a revision's retargeting writes, in one worker-thread call."""

    records: list[tuple[DeviceProgress, tuple[DeviceEvent, ...]]] = field(default_factory=list)
    conditions: list[tuple[str, tuple[Condition, ...]]] = field(default_factory=list)


# (devices whose reconcile was deferred, those of them to re-read from the store first)
Release = Callable[[list[str], list[str]], None]


class HeldWrites:
    """Slices written in a worker thread, one at a time, their devices held meanwhile."""

    def __init__(self, write: Callable[[RetargetSlice], None], release: Release) -> None:
        self.write = write  # runs in a worker thread; the store serialises its writer
        self._release = release
        self._held: set[str] = set()
        self._deferred: dict[str, bool] = {}  # device -> re-read from the store first

    def holds(self, device_id: str) -> bool:
        return device_id in self._held

    def defer(self, device_id: str, *, reload: bool = False) -> None:
        """Look at a held device again once its slice has committed."""
        self._deferred[device_id] = self._deferred.get(device_id, False) or reload

    async def land(self, batch: RetargetSlice) -> None:
        """Commit `batch` in a worker thread; return once it has. Even when the caller
        is cancelled meanwhile, its devices stay held until the thread is done."""
        self._held.update(progress.device_id for progress, _ in batch.records)
        await asyncio.shield(asyncio.ensure_future(self._write_then_release(batch)))

    async def _write_then_release(self, batch: RetargetSlice) -> None:
        try:
            await asyncio.to_thread(self.write, batch)
        finally:
            deferred, self._deferred = self._deferred, {}
            self._held.clear()
            if deferred:
                self._release(list(deferred), [d for d, reload in deferred.items() if reload])
