"""`NodeLease`: this node acts on devices only while the shared store hears from it.

Every `lease / 3` seconds a heartbeat is written through the store (on a thread of its
own, `SideThread`, bounded by a timeout; a heartbeat still hanging when the next is due
counts as a miss, so a database that stops answering holds one thread, not one more per
period). While the last good one is younger than `lease`, the node holds
its lease; once it is older (the database is cut off, or too slow to answer), the node
stops acting on devices: the controller parks every device it would reconcile, `/readyz`
answers 503 with the reason, and one error line says since when. When heartbeats land
again, the parked devices are looked at again and one line says so. A node that cannot
reach the store could not record a step anyway; stopping it from sending requests too
keeps it from acting on devices another node may be taking over. Run by `serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from reconciler.side_thread import SideThread

log = logging.getLogger("reconciler.cluster")

Beat = Callable[[str, float, float], None]  # (node, now, lease): Store.heartbeat


class NodeLease:
    def __init__(self, beat: Beat, node: str, lease: float,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._beat, self.node, self.lease = beat, node, lease
        self._clock, self._monotonic = clock, monotonic
        self._held_until = monotonic() + lease  # a fresh node starts holding it
        self._lost_since: float | None = None  # wall clock, for the reason shown
        self._parked: set[str] = set()
        self._thread = SideThread(f"fota-lease-{node}")
        self.on_regained: Callable[[list[str]], None] = lambda _keys: None

    @property
    def held(self) -> bool:
        return self._monotonic() < self._held_until

    def reason(self) -> str | None:
        """Why this node does not act on devices now (None: it does)."""
        if self.held:
            return None
        lost = self._lost_since if self._lost_since is not None else self._clock()
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(lost))
        return (f"store unreachable since {since}: not acting on devices "
                f"(lease {self.lease:g}s)")

    def park(self, device_id: str) -> None:
        """A device not reconciled while the lease is lost: looked at once it is back."""
        self._parked.add(device_id)

    async def beat_once(self) -> bool:
        """One heartbeat, bounded by a third of the lease; True when it landed."""
        now, started = self._clock(), self._monotonic()
        try:
            await self._thread.call(lambda: self._beat(self.node, now, self.lease),
                                    timeout=self.lease / 3)
        except Exception as exc:  # a cut connection, a timeout: the lease runs out
            self._note_failure(exc)
            return False
        self._held_until = started + self.lease
        self._regained()
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Heartbeats every third of the lease until `stop`."""
        try:
            while not stop.is_set():
                await self.beat_once()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.lease / 3)
        finally:
            await self._thread.close(lambda: None, timeout=self.lease / 3)

    def _note_failure(self, exc: BaseException) -> None:
        if self.held or self._lost_since is not None:
            return  # still within the lease, or already said
        self._lost_since = self._clock()
        log.error("node %s lost its lease on the store (%s: %s): not acting on devices "
                  "until it is back", self.node, type(exc).__name__, exc)

    def _regained(self) -> None:
        """One line per recovery (and one per loss), however many devices waited."""
        if self._lost_since is None and not self._parked:
            return
        parked, self._parked = sorted(self._parked), set()
        if self._lost_since is not None:
            log.warning("node %s holds its lease on the store again: %d devices to look at",
                        self.node, len(parked))
        self._lost_since = None
        self.on_regained(parked)
