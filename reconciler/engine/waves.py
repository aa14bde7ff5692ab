"""Waves: which wave of a rollout a device belongs to, and how far the rollout has come.

Pure. A device's wave is a function of (device id, target, tags, wave list) alone: a
stable hash of the device id and the target ranks it in [0, 100), and a wave with a
`share` takes the devices its tags select whose rank falls in the wave's own slice of
that range (slices of waves with the same tag selector follow each other). The same
devices are the canary on every run and after a restart, and adding devices to the
collection only adds members, at each wave's rate, never moves one. Devices no wave
selects form the last wave.

The controller's rollout index keeps one `WaveStats` per wave incrementally and asks
`rollout_position` and `wave_gate` per decision: O(waves), never O(devices). `fota plan`
counts members with `wave_of`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from reconciler.model.desired import Wave

RESUME = ("to resume, raise rollout.retry (failed devices are retried) or change the "
          "target in git")
_SCALE = 100.0 / 2**64


def rank(device_id: str, target: str) -> float:
    """The device's place in [0, 100) for this target: the same on every run; another
    target shuffles the fleet again, so one unlucky device is not every release's canary."""
    digest = hashlib.blake2b(f"{target}\0{device_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") * _SCALE


# waves tuple's id -> (the tuple itself, its slices): looked up by identity on every
# decision (hashing the frozen waves each time cost more than the hash of the device);
# the tuple is kept in the entry so its id cannot be reused while cached.
_SLICES: dict[int, tuple[tuple[Wave, ...], tuple[tuple[float, float], ...]]] = {}
_SLICES_KEPT = 64


def _slices(waves: tuple[Wave, ...]) -> tuple[tuple[float, float], ...]:
    entry = _SLICES.get(id(waves))
    if entry is None or entry[0] is not waves:
        if len(_SLICES) >= _SLICES_KEPT:
            _SLICES.clear()  # a few revisions' worth; rebuilt on the next decision
        entry = _SLICES[id(waves)] = (waves, _laid_out(waves))
    return entry[1]


def _laid_out(waves: tuple[Wave, ...]) -> tuple[tuple[float, float], ...]:
    """Each wave's [start, end) of the rank range: shares of waves with the same
    selector are laid end to end, so two `share: 10%` waves take different devices."""
    taken: dict[tuple[tuple[str, str], ...], float] = {}
    found = []
    for wave in waves:
        start = taken.get(wave.tags, 0.0)
        end = start + wave.share if wave.share is not None else 100.0
        taken[wave.tags] = end
        found.append((start, end))
    return tuple(found)


def wave_of(waves: tuple[Wave, ...], device_id: str, target: str,
            tags: Mapping[str, str]) -> int:
    """The index of the device's wave in `waves`; `len(waves)` for the last wave (the
    devices no wave selects), 0 when there are no waves."""
    where: float | None = None
    for index, (wave, (start, end)) in enumerate(zip(waves, _slices(waves), strict=True)):
        if not wave.selects(tags):
            continue
        if wave.share is None:
            return index
        if where is None:
            where = rank(device_id, target)
        if start <= where < end:
            return index
    return len(waves)


@dataclass(frozen=True, slots=True)
class WaveStats:
    """Counts over one wave's devices for the target being rolled out."""

    members: int = 0
    current: int = 0  # devices running the target
    failed: int = 0  # devices in a terminal failure (UpdateFailed, Reverted)
    in_flight: int = 0
    last_current_at: float = 0.0  # when the last of them became Current (persisted)

    @property
    def finished(self) -> bool:
        """Every member Current or terminal."""
        return self.current + self.failed >= self.members


class Stage(Enum):
    """Where the rollout stands, as `rollout_position` tells it."""

    RUNNING = "running"  # `index` is the wave that may start devices
    SOAKING = "soaking"  # `index` finished and passed; the next starts at `until`
    HALTED = "halted"  # `index` failed its gate
    DONE = "done"  # every wave finished (the last one included)


@dataclass(frozen=True, slots=True)
class Position:
    """The rollout's current wave, what it is doing and, while closed, why."""

    index: int
    name: str
    stage: Stage
    reason: str = ""
    until: float | None = None  # the soak's end


def wave_name(waves: Sequence[Wave], index: int) -> str:
    return waves[index].name if index < len(waves) else "the rest"


def rollout_position(waves: tuple[Wave, ...], stats: Sequence[WaveStats],
                     now: float) -> Position:
    """The first wave that has not finished, passed its gate and soaked (`stats[i]` for
    `waves[i]`, and one more for the last wave)."""
    for index, wave in enumerate(waves):
        wave_stats = stats[index] if index < len(stats) else WaveStats()
        halted = _gate_failure(wave, wave_stats)
        if halted:
            return Position(index, wave.name, Stage.HALTED, halted)
        if not wave_stats.finished:
            return Position(index, wave.name, Stage.RUNNING)
        until = wave_stats.last_current_at + wave.soak
        if wave_stats.current and now < until:
            reason = f"wave {wave.name} soaking until {_utc(until)}"
            return Position(index, wave.name, Stage.SOAKING, reason, until)
    rest = stats[len(waves)] if len(stats) > len(waves) else WaveStats()
    stage = Stage.DONE if rest.finished else Stage.RUNNING
    return Position(len(waves), wave_name(waves, len(waves)), stage)


def _gate_failure(wave: Wave, stats: WaveStats) -> str:
    """Why `wave` failed its gate ("" while it has not): too many failures at any time,
    too little success once it finished."""
    threshold = wave.failure_threshold
    if threshold is not None and threshold.exceeded(stats.failed, stats.members):
        return (f"rollout halted at wave {wave.name}: {stats.failed} of {stats.members} "
                f"devices failed (wave failureThreshold {threshold}); {RESUME}")
    wanted = wave.min_success
    if (wanted is not None and stats.finished and stats.members
            and stats.current * 100.0 < wanted * stats.members):
        share = stats.current * 100.0 / stats.members
        return (f"rollout halted after wave {wave.name}: {stats.current} of "
                f"{stats.members} devices Current ({share:.3g}%), below minSuccess "
                f"{wanted:g}%; {RESUME}")
    return ""


def _utc(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
