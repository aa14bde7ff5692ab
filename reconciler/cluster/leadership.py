"""Which node applies each desired revision to the shared store, and how the others follow.

Exactly one node (the leader) materialises a revision's rows; every other node reads the
same commit from its own copy of the repository, waits until the store says that revision
is applied, and goes on with its own in-memory snapshot. On one node (`SoleLeader`: the
SQLite store, one writer by its flock) the node always leads. A shared store's
leadership is a lock with a lease, taken over by another node when the holder dies.
`applier(...)` is what the controller's Decider calls (in a worker thread) instead of
`Store.apply_desired`; wired by `serve`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from reconciler.model.desired import DesiredState

log = logging.getLogger("reconciler.cluster")
FOLLOW_POLL = 0.2  # seconds between a follower's looks at the applied revision


class Leadership(Protocol):
    @property
    def leader(self) -> bool: ...
    async def settle(self) -> None: ...  # one look, before the first revision is applied
    async def run(self, stop: asyncio.Event) -> None: ...  # holds or seeks the lock


class SoleLeader:
    """One node on its own store: always the leader, nothing to hold."""

    leader = True

    async def settle(self) -> None:
        return None

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()


class Desired(Protocol):
    def apply_desired(self, desired: DesiredState) -> None: ...
    def applied_revision(self) -> str | None: ...


def applier(store: Desired, leadership: Leadership, follow_timeout: float,
            monotonic: Callable[[], float] = time.monotonic
            ) -> Callable[[DesiredState], None]:
    """`apply(desired)`: the leader writes the revision; a follower waits (blocking: it
    runs in a worker thread) until the store says it is applied, at most
    `follow_timeout`, taking over should it become the leader meanwhile."""

    def apply(desired: DesiredState) -> None:
        deadline = monotonic() + follow_timeout
        while not leadership.leader:
            if store.applied_revision() == desired.revision:
                log.info("revision %s applied by the leader", desired.revision[:12])
                return
            if monotonic() >= deadline:
                log.warning("revision %s not applied by the leader within %gs: running it "
                            "from this node's copy", desired.revision[:12], follow_timeout)
                return
            time.sleep(FOLLOW_POLL)
        store.apply_desired(desired)

    return apply
