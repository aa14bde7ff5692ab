"""`ProgressFeed`: what the other nodes sharing the store wrote, for this node's rollout
index, so the rollout guards and the status count the whole fleet on every node.

Each node keeps its rollout index in memory (devices in flight, each wave's members,
Current and failed, the failures that halt a rollout) and writes the collection's status
from it. On its own it sees only its own writes: two nodes with one failure each would
each stay under a failure threshold of two, and a wave whose devices another node updated
would never finish here. The tallies' `device_changes` stamp every progress change in
commit order, so every second (the controller's resync tick) the feed reads, per
collection, the records changed since its last stamp (at most `BATCH` changes each, in a
worker thread), and the Decider puts each in its index, except those of the devices it
owns: only the owner writes those (fenced), so its own record is the newest, and a read
that overtook its write is not. A collection's status written from the index carries
the feed's position (`position`), so a lagging node's cannot replace a newer one. The
first stamp is read before the index is loaded from
the store (`begin`), so no change falls between the two. On one
node there is no feed. Built by `serve.nodes` for a shared store; used by the
controller's Decider.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from reconciler.model.observed import DeviceProgress

BATCH = 2_000  # changes read per collection and tick: a burst is taken over a few ticks


class Changes(Protocol):
    """The store's part (`reconciler.store.Store` has it)."""

    def change_seq(self) -> int: ...
    def progress_changes(self, collection_id: str, since: int,
                         limit: int) -> tuple[int, list[DeviceProgress]]: ...


class ProgressFeed:
    def __init__(self, store: Changes, batch: int = BATCH) -> None:
        self._store, self._batch = store, batch
        self._start: int | None = None  # the stamp the index was loaded at
        self._stamps: dict[str, int] = {}  # collection -> the last change read

    def begin(self) -> None:
        """Right before the index is loaded from the store (a worker thread)."""
        self._start = self._store.change_seq()
        self._stamps.clear()

    def position(self, collection_id: str) -> int | None:
        """How far the index has read the collection's changes (None before `begin`):
        the stamp a status written from the index carries (`store.collection_status`)."""
        return self._stamps.get(collection_id, self._start)

    def read(self, collections: Iterable[str]) -> list[DeviceProgress]:
        """The records of `collections` changed since the last read (a worker thread);
        nothing before `begin`."""
        start = self._start
        if start is None:
            return []
        found: list[DeviceProgress] = []
        for collection_id in collections:
            since = self._stamps.get(collection_id, start)
            stamp, records = self._store.progress_changes(collection_id, since, self._batch)
            self._stamps[collection_id] = stamp
            found.extend(records)
        return found

