"""What a proposed desired state does to the fleet as last observed: pure summarising.

`summarize(desired, observed)` gives, per collection, how many devices move from which
version to which, how many already run their target, which are blocked and why, and how
many wait for a rollout slot, and how many devices each wave holds; `render` prints it.
The verdicts are the engine's own: a device's state is terminal by
`UpdateState.terminal`, the waves' members are `wave_of`'s, and the rollout guards
(paused, failureThreshold, maxConcurrent) are `rollout_gate` over counts taken from the
observed devices as the controller's rollout index keeps them. Called by `review.cmd`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection as Ids
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.engine import GateKind, RolloutStats, rollout_gate
from reconciler.engine.machine import HOLDS
from reconciler.engine.waves import wave_of
from reconciler.engine.windows import outlook
from reconciler.model.desired import Collection, DesiredState, Device, DriftPolicy, Management
from reconciler.model.status import UpdateState
from reconciler.store import DeviceView

UNREPORTED = "unreported"


@dataclass
class CollectionPlan:
    collection_id: str
    name: str
    management: str
    target: str | None
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    current: int = 0
    blocked: Counter[str] = field(default_factory=Counter)
    waiting: int = 0  # of the moves, how many wait for a slot (maxConcurrent)
    max_concurrent: int | None = None
    # "runs 1.0, should run 2.0" -> devices that left the target they had reached
    drifted: Counter[str] = field(default_factory=Counter)
    drift_policy: str = "correct"
    windows: list[str] = field(default_factory=list)  # engine.windows.outlook, per window
    # The rollout's waves in order, the last one (devices no wave selects) included:
    # (name, devices, of which already on the target).
    waves: list[tuple[str, int, int]] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "collectionId": self.collection_id, "name": self.name,
            "management": self.management, "target": self.target,
            "moves": [{"from": a, "to": b, "devices": n}
                      for (a, b), n in sorted(self.moves.items())],
            "current": self.current,
            "blocked": [{"reason": r, "devices": n} for r, n in sorted(self.blocked.items())],
            "waitingForSlot": self.waiting, "maxConcurrent": self.max_concurrent,
            "drifted": [{"drift": d, "devices": n} for d, n in sorted(self.drifted.items())],
            "driftPolicy": self.drift_policy, "windows": self.windows,
            "waves": [{"name": name, "devices": n, "current": on}
                      for name, n, on in self.waves],
        }

    def waves_line(self) -> str:
        """`waves: canary 12 (3 on target), early 60, the rest 128`, or ""."""
        parts = [f"{name} {n}" + (f" ({on} on target)" if on else "")
                 for name, n, on in self.waves]
        return f"waves: {', '.join(parts)}" if parts else ""


@dataclass(frozen=True, slots=True)
class _Seen:
    """One device of the proposed state beside what was last observed of it."""

    device: Device
    target_id: str | None  # effective target under the proposed state
    state: UpdateState | None  # the observed update state
    failed: bool  # in a terminal state for this very target
    current: str  # the version it reports, as the plan labels it
    target: str | None  # the target's version
    drift: str | None = None  # observed Drifted for this very target (engine.drift)


def summarize(desired: DesiredState, observed: Mapping[str, DeviceView],
              now: float | None = None, retried: Ids[str] = ()) -> list[CollectionPlan]:
    """`now`: the instant the windows' next openings are told from (None: not told);
    `retried`: devices whose retry counter the change raises (their failure ends)."""
    members: dict[str, list[_Seen]] = defaultdict(list)
    for device in desired.devices.values():
        members[device.collection_id].append(_seen(
            desired, device, observed.get(device.device_id), device.device_id in retried))
    plans = [_collection_plan(desired, c, members[cid])
             for cid, c in sorted(desired.collections.items())]
    for plan in plans:
        collection = desired.collections[plan.collection_id]
        plan.drift_policy = collection.drift_policy.value
        if now is not None:
            plan.windows = [outlook(w, now) for w in collection.rollout.windows]
    return plans


def _seen(desired: DesiredState, device: Device, view: DeviceView | None,
          retried: bool = False) -> _Seen:
    target_id = desired.effective_target(device)
    state = _state(view)
    failed = (state is not None and state.terminal and view is not None and not retried
              and target_id is not None and view.target_image_id == target_id)
    drift = view.drift if view is not None and view.target_image_id == target_id else None
    return _Seen(device, target_id, state, failed, _label(desired, device, view),
                 _version(desired, target_id), drift)


def _state(view: DeviceView | None) -> UpdateState | None:
    if view is None or not view.state:
        return None
    try:
        return UpdateState(view.state)
    except ValueError:  # a state a newer release wrote: no verdict from it
        return None


def _label(desired: DesiredState, device: Device, view: DeviceView | None) -> str:
    if view is None or view.firmware_version is None:
        return UNREPORTED
    image = desired.image_by_version(device.collection_id, view.firmware_version)
    return image.version if image else f"{view.firmware_version.strip()} (unknown image)"


def _collection_plan(desired: DesiredState, collection: Collection,
                     seen: Sequence[_Seen]) -> CollectionPlan:
    policy = collection.rollout
    entry = CollectionPlan(collection.collection_id, collection.name,
                           collection.management.value,
                           _version(desired, collection.target_image_id),
                           max_concurrent=policy.max_concurrent)
    stats = _stats(collection, seen)
    gate = rollout_gate(policy, stats)
    entry.waves = _waves(collection, seen)
    free = None if policy.max_concurrent is None else \
        max(policy.max_concurrent - stats.in_flight, 0)
    for s in seen:
        if s.drift is not None:
            entry.drifted[s.drift] += 1  # shown apart; `correct` also moves it below
        if s.target is not None and s.current == s.target:
            entry.current += 1
        elif (reason := _held(desired, s)) is not None:
            entry.blocked[reason] += 1
        elif s.target is None:
            entry.blocked["target image unknown"] += 1
        elif s.state is not None and s.state.in_flight:
            entry.moves[(s.current, s.target)] += 1  # already under way: the gate let it
        elif gate.kind in (GateKind.PAUSED, GateKind.HALTED):
            entry.blocked[gate.reason] += 1
        else:
            entry.moves[(s.current, s.target)] += 1
            if free is not None:
                entry.waiting += free == 0
                free = max(free - 1, 0)
    return entry


def _held(desired: DesiredState, s: _Seen) -> str | None:
    """Why this device will not move whatever the rollout says, if it will not."""
    if desired.management_of(s.device) is Management.DISABLED:
        return "firmware management disabled"
    if s.target_id is None:
        return "no target firmware"
    if s.failed and s.state is not None:
        return f"{s.state.value} {HOLDS}"
    if s.drift is not None and desired.collections[s.device.collection_id].drift_policy \
            is DriftPolicy.REPORT:
        return "drifted; driftPolicy report: not corrected"
    return None


def _stats(collection: Collection, seen: Sequence[_Seen]) -> RolloutStats:
    """The collection's rollout counts as the controller's rollout index keeps them,
    from the observed devices: in flight, failed for their target, and the population
    of the collection's target (devices targeting it that do not run it). A device that
    reached the target through this rollout cannot be told apart here from one found on
    it, so this population is never larger than the controller's: a failure share is
    never under-estimated."""
    in_flight = sum(1 for s in seen if s.state is not None and s.state.in_flight)
    failed = sum(1 for s in seen if s.failed)
    target = collection.target_image_id
    population = 0 if target is None else sum(
        1 for s in seen if s.target_id == target and s.current != s.target)
    return RolloutStats(in_flight=in_flight, failed=failed, population=population)


def _waves(collection: Collection, seen: Sequence[_Seen]) -> list[tuple[str, int, int]]:
    """Members per wave of the rollout to the collection's target, by the engine's own
    `wave_of`: the same devices the controller will put in each wave."""
    waves, target = collection.rollout.waves, collection.target_image_id
    if not waves or target is None:
        return []
    members, on_target = [0] * (len(waves) + 1), [0] * (len(waves) + 1)
    for s in seen:
        if s.target_id == target:
            wave = wave_of(waves, s.device.device_id, target, s.device.tags)
            members[wave] += 1
            on_target[wave] += s.current == s.target
    names = [wave.name for wave in waves] + ["the rest"]
    return list(zip(names, members, on_target, strict=True))


def _version(desired: DesiredState, image_id: str | None) -> str | None:
    image = desired.images.get(image_id) if image_id else None
    return image.version if image else None


def render(plans: list[CollectionPlan]) -> str:
    lines = []
    for p in plans:
        name = f" ({p.name})" if p.name else ""
        lines.append(f"collection {p.collection_id}{name}: management {p.management}, "
                     f"target {p.target or '-'}")
        for (old, new), count in sorted(p.moves.items()):
            lines.append(f"  {count} device{'s' * (count != 1)} move {old} -> {new}")
        if p.waiting:
            lines.append(f"  {p.waiting} of them wait for a slot "
                         f"(maxConcurrent {p.max_concurrent})")
        lines.append(f"  {p.current} already on target")
        if p.waves:
            lines.append(f"  {p.waves_line()}")
        for reason, count in sorted(p.blocked.items()):
            lines.append(f"  {count} blocked: {reason}")
        lines += drift_lines(p)
        lines += [f"  window {w}" for w in p.windows]
    return "\n".join(lines)


def drift_lines(p: CollectionPlan) -> list[str]:
    """Drift, apart from the moves: `2 drifted (driftPolicy correct): runs 1.0, ...`."""
    return [f"  {n} drifted (driftPolicy {p.drift_policy}): {d}"
            for d, n in sorted(p.drifted.items())]
