"""The controller's in-memory index of progress per collection, for the rollout gate.

Counts devices in flight, started, failed and, per target, the rollout's population (the
devices it has to update: all but those found already running it) per collection
incrementally, so deciding
whether one more update may start costs O(1) even with 100,000 devices. The controller
updates it synchronously right after each plan (no await in between), so two concurrent
reconciles can never both take the last slot. Also renders the collection's rollout
status for the store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from reconciler.engine import Gate, RolloutStats, rollout_gate
from reconciler.model.desired import Collection
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState

SHRINK_BELOW = 4  # rebuild the records' table once it holds less than 1/4 of its peak


@dataclass
class _Tally:
    states: Counter[UpdateState] = field(default_factory=Counter)
    started: int = 0
    in_flight: int = 0  # kept alongside `states`: every decision asks for the gate
    failed: int = 0
    drifted: int = 0  # devices that left the target they had reached (engine.drift)
    needing: Counter[str | None] = field(default_factory=Counter)  # target -> population

    def apply(self, progress: DeviceProgress, sign: int) -> None:
        state = progress.state
        self.states[state] += sign
        self.in_flight += sign * state.in_flight
        self.failed += sign * state.terminal
        self.drifted += sign * (progress.drift is not None)
        self.started += sign * (progress.attempts > 0)
        self.needing[progress.target_image_id] += sign * _needs_update(progress)

    def stats(self, target: str | None) -> RolloutStats:
        return RolloutStats(in_flight=self.in_flight, started=self.started,
                            failed=self.failed,
                            population=self.needing[target] if target else 0)


def _needs_update(progress: DeviceProgress) -> bool:
    """Part of the rollout unless found already running its target (never attempted)."""
    return progress.state is not UpdateState.CURRENT or progress.attempts > 0


class RolloutIndex:
    def __init__(self) -> None:
        self._records: dict[str, tuple[str, DeviceProgress]] = {}
        self._tallies: dict[str, _Tally] = {}
        self._peak = 0  # the most records held since `_records` was last rebuilt

    def load(self, records: Iterable[tuple[str, DeviceProgress]]) -> None:
        for collection_id, progress in records:
            self.put(collection_id, progress)

    def get(self, device_id: str) -> DeviceProgress | None:
        entry = self._records.get(device_id)
        return entry[1] if entry else None

    def put(self, collection_id: str, progress: DeviceProgress) -> None:
        self.remove(progress.device_id)
        self._records[progress.device_id] = (collection_id, progress)
        self._peak = max(self._peak, len(self._records))
        tally = self._tallies.get(collection_id)
        if tally is None:
            tally = self._tallies[collection_id] = _Tally()
        tally.apply(progress, +1)

    def remove(self, device_id: str) -> None:
        old = self._records.pop(device_id, None)
        if old is not None:
            self._tallies[old[0]].apply(old[1], -1)
            if len(self._records) < self._peak // SHRINK_BELOW:
                # A dict never gives back the table it grew to: after 200,000 devices go
                # it would keep megabytes for a few entries. Rebuilt at a quarter of the
                # peak, so the copies cost O(1) per removal.
                self._records = dict(self._records)
                self._peak = len(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def stats(self, collection_id: str, target: str | None = None) -> RolloutStats:
        """The collection's counts; `population` only for `target` (its rollout's)."""
        tally = self._tallies.get(collection_id)
        return tally.stats(target) if tally else RolloutStats()

    def counts(self, collection_id: str) -> dict[UpdateState, int]:
        tally = self._tallies.get(collection_id)
        return {s: n for s, n in tally.states.items() if n} if tally else {}

    def gate(self, collection: Collection) -> Gate:
        return rollout_gate(collection.rollout, self._stats_of(collection))

    def _stats_of(self, collection: Collection) -> RolloutStats:
        return self.stats(collection.collection_id, collection.target_image_id)

    def status(self, collection: Collection, revision: str) -> dict[str, object]:
        """What the API's /status shows for this collection's rollout."""
        stats, gate, policy = self._stats_of(collection), self.gate(collection), \
            collection.rollout
        return {
            "revision": revision,
            "targetImageId": collection.target_image_id,
            "counts": {s.value: n for s, n in self.counts(collection.collection_id).items()},
            "inFlight": stats.in_flight,
            "started": stats.started,
            "failed": stats.failed,
            "drifted": tally.drifted if (tally := self._tallies.get(collection.collection_id))
            else 0,
            "population": stats.population,
            "failureThreshold": str(t) if (t := policy.failure_threshold) else None,
            "maxConcurrent": policy.max_concurrent,
            "paused": policy.paused,
            "halted": gate.halted,
            "reason": gate.reason,
        }
