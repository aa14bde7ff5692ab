"""The controller's in-memory index of progress per collection, for the rollout gate.

Counts devices in flight, started, failed and, per target, the rollout's population (the
devices it has to update: all but those found already running it) per collection
incrementally, and per (target, wave) the wave's members, Current, failed and when its
last member became Current, so deciding whether one more update may start costs
O(waves) even with 100,000 devices. Where a record belongs (its wave, and whether it is
about the device's present target: `live`) comes from `place`, the controller's
function over the desired state; only live records count as failed, so an old target's
failure never halts a new rollout. The controller updates it synchronously right after
each plan (no await in between), so two concurrent reconciles can never both take the
last slot. Also renders the collection's rollout status for the store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from reconciler.engine import Gate, GateKind, RolloutStats, rollout_gate
from reconciler.engine.waves import Position, Stage, WaveStats, rollout_position
from reconciler.model.desired import Collection, Wave
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState

SHRINK_BELOW = 4  # rebuild the records' table once it holds less than 1/4 of its peak
Placement = tuple[int, bool]  # (wave, live: the record is about the device's target)


def _everywhere(_progress: DeviceProgress) -> Placement:
    return 0, True


@dataclass
class _WaveTally:
    members: int = 0
    current: int = 0
    failed: int = 0
    in_flight: int = 0
    # Never lowered by a record leaving Current: a soak, once its wave finished, is not
    # restarted. Rebuilt from the persisted records' updated_at on a restart.
    last_current_at: float = 0.0

    def apply(self, progress: DeviceProgress, sign: int) -> None:
        state = progress.state
        self.members += sign
        self.current += sign * (state is UpdateState.CURRENT)
        self.failed += sign * state.terminal
        self.in_flight += sign * state.in_flight
        if sign > 0 and state is UpdateState.CURRENT:
            self.last_current_at = max(self.last_current_at, progress.updated_at)
        if self.members == 0:
            self.last_current_at = 0.0  # a later rollout of the same target starts afresh

    def stats(self) -> WaveStats:
        return WaveStats(self.members, self.current, self.failed, self.in_flight,
                         self.last_current_at)


@dataclass
class _Tally:
    states: Counter[UpdateState] = field(default_factory=Counter)
    started: int = 0
    in_flight: int = 0  # kept alongside `states`: every decision asks for the gate
    failed: int = 0  # terminal and about the device's present target
    drifted: int = 0  # devices that left the target they had reached (engine.drift)
    needing: Counter[str | None] = field(default_factory=Counter)  # target -> population
    waves: dict[tuple[str | None, int], _WaveTally] = field(default_factory=dict)
    generation: int = 0  # bumped on every change: the cached wave position is stale
    # target -> (generation, waves, position): most decisions (held devices) change no
    # count, and recomputing the position for each would cost O(waves) allocations.
    positions: dict[str | None, tuple[int, tuple[Wave, ...], Position]] = field(
        default_factory=dict)

    def apply(self, progress: DeviceProgress, placement: Placement, sign: int) -> None:
        state = progress.state
        wave, live = placement
        self.generation += 1
        self.states[state] += sign
        self.in_flight += sign * state.in_flight
        self.failed += sign * (state.terminal and live)
        self.drifted += sign * (progress.drift is not None)
        self.started += sign * (progress.attempts > 0)
        self.needing[progress.target_image_id] += sign * _needs_update(progress)
        if live:
            key = (progress.target_image_id, wave)
            tally = self.waves.get(key)
            if tally is None:
                tally = self.waves[key] = _WaveTally()
            tally.apply(progress, sign)

    def stats(self, target: str | None) -> RolloutStats:
        return RolloutStats(in_flight=self.in_flight, started=self.started,
                            failed=self.failed,
                            population=self.needing[target] if target else 0)

    def position(self, waves: tuple[Wave, ...], target: str, now: float) -> Position:
        cached = self.positions.get(target)
        if (cached is not None and cached[0] == self.generation and cached[1] is waves
                and (cached[2].until is None or now < cached[2].until)):
            return cached[2]  # only a soak's end changes a position without a count
        found = rollout_position(waves, self.wave_stats(target, len(waves) + 1), now)
        self.positions[target] = (self.generation, waves, found)
        return found

    def wave_stats(self, target: str | None, count: int) -> list[WaveStats]:
        """`count` waves' stats for `target` (the last wave included in `count`)."""
        found = (self.waves.get((target, index)) for index in range(count))
        return [tally.stats() if tally else WaveStats() for tally in found]


def _needs_update(progress: DeviceProgress) -> bool:
    """Part of the rollout unless found already running its target (never attempted)."""
    return progress.state is not UpdateState.CURRENT or progress.attempts > 0


class RolloutIndex:
    def __init__(self, place: Callable[[DeviceProgress], Placement] = _everywhere) -> None:
        self._place = place
        self._records: dict[str, tuple[str, DeviceProgress, Placement]] = {}
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
        placement = self._place(progress)
        self._records[progress.device_id] = (collection_id, progress, placement)
        self._peak = max(self._peak, len(self._records))
        tally = self._tallies.get(collection_id)
        if tally is None:
            tally = self._tallies[collection_id] = _Tally()
        tally.apply(progress, placement, +1)

    def replace(self, device_id: str) -> None:
        """Place the device's record again: a new revision may have moved its wave or
        target (the record itself unchanged)."""
        entry = self._records.get(device_id)
        if entry is not None:
            self.put(entry[0], entry[1])

    def remove(self, device_id: str) -> None:
        old = self._records.pop(device_id, None)
        if old is not None:
            self._tallies[old[0]].apply(old[1], old[2], -1)
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

    def gate(self, collection: Collection, now: float = 0.0, wave: int | None = None,
             target: str | None = None) -> Gate:
        """The rollout gate for a device of `wave` towards `target` (by default the
        collection's), or with `wave` None the collection's own (paused, halted, full)."""
        target = target or collection.target_image_id
        position = self.position(collection, now, target)
        return rollout_gate(collection.rollout, self._stats_of(collection), position, wave)

    def position(self, collection: Collection, now: float,
                 target: str | None = None) -> Position | None:
        """Where the rollout towards `target` stands among its waves (None: no waves)."""
        waves = collection.rollout.waves
        target = target or collection.target_image_id
        tally = self._tallies.get(collection.collection_id)
        if not waves or target is None:
            return None
        if tally is None:
            return rollout_position(waves, [], now)
        return tally.position(waves, target, now)

    def wave_stats(self, collection: Collection) -> list[WaveStats]:
        tally = self._tallies.get(collection.collection_id)
        count = len(collection.rollout.waves) + 1
        if tally is None:
            return [WaveStats()] * count
        return tally.wave_stats(collection.target_image_id, count)

    def _stats_of(self, collection: Collection) -> RolloutStats:
        return self.stats(collection.collection_id, collection.target_image_id)

    def status(self, collection: Collection, revision: str,
               now: float = 0.0) -> dict[str, object]:
        """What the API's /status shows for this collection's rollout."""
        stats, gate, policy = self._stats_of(collection), self.gate(collection, now), \
            collection.rollout
        shown: dict[str, object] = {
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
            "retry": policy.retry,
        }
        position = self.position(collection, now)
        if position is not None:
            shown["waves"] = self._waves_status(collection, position)
        return shown

    def _waves_status(self, collection: Collection, position: Position) -> dict[str, object]:
        """The current wave, its progress and gate, and every wave's counts."""
        waves, stats = collection.rollout.waves, self.wave_stats(collection)
        names = [w.name for w in waves] + ["the rest"]
        return {
            "current": position.name,
            "index": position.index,
            "stage": position.stage.value,
            "gate": position.reason or ("passed" if position.stage is Stage.DONE else "open"),
            "soakUntil": position.until,
            "waves": [{"name": name, "members": s.members, "current": s.current,
                       "failed": s.failed, "inFlight": s.in_flight}
                      for name, s in zip(names, stats, strict=True)],
        }


def to_release(held: dict[int, set[str]], gate: Gate, position: Position | None,
               max_concurrent: int | None, in_flight: int) -> list[str]:
    """Which gate-held devices (wave -> ids) to wake, taken out of `held`: all when the
    rollout is halted or paused, so each one says why; else as many as there are free
    slots, lowest wave first, from the waves that may start; and every device of the
    wave after a soaking one, so each learns when the soak ends (and is looked at then)."""
    if gate.kind in (GateKind.HALTED, GateKind.PAUSED):
        return _take(held, list(held), None)
    last = position.index if position is not None else max(held, default=0)
    keys: list[str] = []
    if position is not None and position.stage is Stage.SOAKING:
        keys = _take(held, [last + 1], None)
    free = None if max_concurrent is None else max(max_concurrent - in_flight, 0)
    return keys + _take(held, sorted(w for w in held if w <= last), free)


def _take(held: dict[int, set[str]], waves: list[int], limit: int | None) -> list[str]:
    taken: list[str] = []
    for wave in waves:
        devices = held.get(wave)
        while devices and (limit is None or len(taken) < limit):
            taken.append(devices.pop())
        if devices is not None and not devices:
            del held[wave]
    return taken
