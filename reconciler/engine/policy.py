"""The engine's tunables and the tables it decides by: Update Result codes, deadlines,
backoff and the collection rollout gate (with the waves of `engine.waves`).

Pure values and functions; `decide()` reads them, the controller builds `EngineConfig` from
its pydantic settings and computes `RolloutStats` from the progress records it holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from reconciler.engine.waves import Position, Stage, wave_name
from reconciler.model.desired import FirmwareImage, RolloutPolicy
from reconciler.model.lwm2m import UpdateResult


@dataclass(frozen=True, slots=True)
class EngineConfig:
    max_retries: int = 3  # retries after the first attempt, per device and target
    backoff_base: float = 30.0  # seconds before the first retry, doubled each time
    backoff_max: float = 3600.0  # the longest delay between retries
    # Download deadline = min_download_time + blocks * seconds_per_block, with blocks
    # counted at a small block size: a 144 KiB image over NB-IoT at 64-byte blocks can
    # take 30 minutes and more, and a deadline that fires early only wastes airtime.
    block_size: int = 256
    seconds_per_block: float = 4.0
    min_download_time: float = 120.0
    update_timeout: float = 900.0  # Execute -> device back with a version
    poll_interval: float = 30.0  # when the device does not accept Observe
    # A device told to reset Object 5 (an empty /5/0/1) gets reset_delay to go Idle,
    # doubled for each further reset; still busy after max_resets, it does not follow
    # Object 5 and the update ends (terminal) saying so.
    reset_delay: float = 5.0
    max_resets: int = 3
    # After Execute, ask the device (Probe) probe_delay later, then twice as long each
    # time, instead of waiting out update_timeout; a device still holding the download
    # without a failure never got the Execute and gets it again, max_executes in all.
    probe_delay: float = 5.0
    max_executes: int = 3
    # A download our own restart broke is started again after this, without a retry.
    restart_retry_delay: float = 1.0
    # A push cut short by loss or silence resumes after the last block the device
    # acknowledged, never spending a retry (`engine.pushing`); a pull download the device
    # lost to the link (Update Result 4) is offered again on the same schedule
    # (`engine.pulling`).
    push_resume_delay: float = 1.0  # seconds from a push's stop (a pull's 4) to resuming, doubling
    max_push_resumes: int = 5  # resumptions an attempt (in its deadline); one more fails it

    def download_deadline(self, image: FirmwareImage) -> float:
        blocks = math.ceil(max(image.length, 1) / self.block_size)
        return self.min_download_time + blocks * self.seconds_per_block

    def reset_wait(self, resets: int) -> float:
        """How long to give the device after its `resets`-th reset (1-based)."""
        return _doubled(self.reset_delay, resets)

    def push_resume_wait(self, resume: int) -> float:
        """Seconds from a push's stop (a pull's Update Result 4) to its `resume`-th
        resumption (1-based)."""
        return _doubled(self.push_resume_delay, resume)

    def probe_wait(self, probe: int) -> float:
        """Seconds from the Execute to the `probe`-th Probe (1-based): d, 3d, 7d, ..."""
        return float(self.probe_delay * (2 ** max(probe, 1) - 1))

    def backoff(self, attempts: int) -> float:
        return min(float(self.backoff_max), _doubled(self.backoff_base, attempts))



def _doubled(first: float, n: int) -> float:
    """The `n`-th (1-based) of `first`, 2 `first`, 4 `first`, ...: each wait twice the last."""
    return float(first * 2 ** max(n - 1, 0))


class Outcome(Enum):
    OK = "ok"  # no failure to act on
    RETRY = "retry"  # transient: retry with backoff while the budget lasts
    RETRY_ONCE = "retry-once"  # retried once per target, then terminal
    TERMINAL = "terminal"  # this image will not work on this device
    OURS = "ours"  # our own restart caused it: start again, never spend a retry


# /5/0/5 Update Result -> what it means for the update (OMA LwM2M 1.1 E.6, codes 0-11).
RESULT_TABLE: dict[int, tuple[Outcome, str]] = {
    0: (Outcome.OK, "initial value"),
    1: (Outcome.OK, "firmware updated successfully"),
    2: (Outcome.RETRY, "not enough flash memory for the new firmware package"),
    3: (Outcome.RETRY, "out of RAM during the download"),
    4: (Outcome.RETRY, "connection lost during the download"),
    5: (Outcome.TERMINAL, "integrity check failure for the new package"),
    6: (Outcome.TERMINAL, "unsupported package type"),
    7: (Outcome.TERMINAL, "invalid URI"),
    8: (Outcome.RETRY_ONCE, "firmware update failed"),
    9: (Outcome.TERMINAL, "unsupported protocol"),
    10: (Outcome.RETRY, "firmware update cancelled"),
    11: (Outcome.RETRY, "firmware update deferred"),
}


def classify(result: UpdateResult | None) -> tuple[Outcome, str]:
    """What an Update Result means; a code newer than the table is terminal (be safe)."""
    if result is None:
        return Outcome.OK, "no update result reported"
    code = int(result)
    return RESULT_TABLE.get(code, (Outcome.TERMINAL, f"unknown update result {code}"))


@dataclass(frozen=True, slots=True)
class RolloutStats:
    """Counts over one collection's devices for the target being rolled out."""

    in_flight: int = 0  # devices in Initializing..Completed
    started: int = 0  # devices with at least one attempt for their target
    failed: int = 0  # devices in a terminal failure (UpdateFailed, Reverted)
    population: int = 0  # devices the rollout has to update (not found on it already)


class GateKind(Enum):
    """Why a collection's rollout gate is open or closed."""

    OPEN = "open"
    PAUSED = "paused"  # the manifest says so
    HALTED = "halted"  # the failure threshold is exceeded, or a wave failed its gate
    WAITING = "waiting"  # the device's wave waits for an earlier one to finish and pass
    SOAKING = "soaking"  # the wave before the device's soaks until `Gate.until`
    SLOTS = "slots"  # maxConcurrent devices are in flight


@dataclass(frozen=True, slots=True)
class Gate:
    """Whether the collection's rollout allows another attempt to start now."""

    may_start: bool = True
    reason: str = ""
    kind: GateKind = GateKind.OPEN
    until: float | None = None  # when to look again without a trigger (a soak's end)

    @property
    def halted(self) -> bool:
        return self.kind is GateKind.HALTED


OPEN = Gate()


def slots_to_release(gate: Gate, max_concurrent: int | None, in_flight: int,
                     held: int) -> int:
    """How many of the `held` gate-held devices to wake when an update leaves flight:
    as many as there are free slots, or all of them when the rollout is halted, paused
    or unlimited, so each one says why it waits (or starts)."""
    free = held
    if gate.kind not in (GateKind.HALTED, GateKind.PAUSED) and max_concurrent is not None:
        free = max_concurrent - in_flight
    return min(max(free, 0), held)


RESUME_HINT = ("to resume, raise rollout.retry (failed devices are retried), change the "
               "target or raise failureThreshold in git")


def halt_reason(stats: RolloutStats, threshold: str) -> str:
    """Why the rollout stopped and how the operator gets it going again."""
    return (f"rollout halted: {stats.failed} of {stats.population} devices failed "
            f"(threshold {threshold}); {RESUME_HINT}")


def rollout_gate(policy: RolloutPolicy, stats: RolloutStats,
                 position: Position | None = None, wave: int | None = None) -> Gate:
    """Apply paused, the failure threshold, the waves (where the rollout stands,
    `position`, against the device's `wave`; None: the collection's own gate) and
    maxConcurrent, in that order."""
    if policy.paused:
        return Gate(False, "rollout paused in the collection manifest", GateKind.PAUSED)
    threshold = policy.failure_threshold
    if threshold is not None and threshold.exceeded(stats.failed, stats.population):
        return Gate(False, halt_reason(stats, str(threshold)), GateKind.HALTED)
    if position is not None and (closed := wave_gate(policy, position, wave)) is not None:
        return closed
    if policy.max_concurrent is not None and stats.in_flight >= policy.max_concurrent:
        return Gate(False, f"waiting for a slot: {stats.in_flight} of max "
                    f"{policy.max_concurrent} updating", GateKind.SLOTS)
    return OPEN


def wave_gate(policy: RolloutPolicy, position: Position, wave: int | None) -> Gate | None:
    """The waves' word on a device of `wave` (None: on the collection), or None to go
    on to maxConcurrent. A halt stops every wave; a device of an earlier wave (a retry,
    a device added later) may start while a later one runs."""
    if position.stage is Stage.HALTED:
        return Gate(False, position.reason, GateKind.HALTED)
    if wave is None:
        return None
    if position.stage is Stage.SOAKING and wave > position.index:
        until = position.until if wave == position.index + 1 else None
        return Gate(False, position.reason, GateKind.SOAKING, until)
    if wave > position.index:
        # Without counts, so the held devices' stored message does not change with them.
        waited = wave_name(policy.waves, position.index)
        return Gate(False, f"waiting for wave {waited} to finish and pass its gate",
                    GateKind.WAITING)
    return None
