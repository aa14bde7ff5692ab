"""Desired state applied once per revision (issue 13): the leader writes it, a follower
waits until the store says it is applied, or takes over when it becomes the leader."""

from __future__ import annotations

from pathlib import Path

from builders import collection, desired_state

from reconciler.cluster.leadership import applier
from reconciler.store import open_store


class Follower:
    def __init__(self) -> None:
        self.leader = False

    async def run(self, stop: object) -> None:  # pragma: no cover - not run here
        return None


def test_a_follower_waits_for_the_leaders_revision_and_writes_nothing(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    try:
        first = desired_state(collection(None), [], [], "r1")
        store.apply_desired(first)  # the leader's write
        generation = store._query("SELECT value FROM meta WHERE key = 'desired_generation'")
        applier(store, Follower(), follow_timeout=5.0)(first)
        assert store._query("SELECT value FROM meta WHERE key = 'desired_generation'") \
            == generation
    finally:
        store.close()


def test_a_follower_that_becomes_the_leader_applies_the_revision_itself(
        tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    follower, ticks = Follower(), iter(range(100))

    def monotonic() -> float:  # the leader dies after two looks: this node takes over
        tick = next(ticks)
        follower.leader = tick >= 2
        return float(tick) * 0.001

    try:
        applier(store, follower, follow_timeout=5.0, monotonic=monotonic)(
            desired_state(collection(None), [], [], "r2"))
        assert store.applied_revision() == "r2"
    finally:
        store.close()
