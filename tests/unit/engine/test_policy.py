"""The Update Result table, the rollout gate and the conditions."""

from __future__ import annotations

import pytest

from reconciler.engine import (
    Gate,
    GateKind,
    Outcome,
    RolloutStats,
    classify,
    rollout_gate,
    slots_to_release,
)
from reconciler.engine.conditions import collection_conditions, device_conditions
from reconciler.model.desired import FailureThreshold, RolloutPolicy
from reconciler.model.lwm2m import UpdateResult
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import ConditionType, UpdateState


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(0, Outcome.OK), (1, Outcome.OK), (2, Outcome.RETRY), (3, Outcome.RETRY),
     (4, Outcome.RETRY), (5, Outcome.TERMINAL), (6, Outcome.TERMINAL), (7, Outcome.TERMINAL),
     (8, Outcome.RETRY_ONCE), (9, Outcome.TERMINAL), (10, Outcome.RETRY), (11, Outcome.RETRY),
     (42, Outcome.TERMINAL)],
)
def test_every_update_result_code_maps_to_an_outcome(code: int, outcome: Outcome) -> None:
    assert classify(UpdateResult(code))[0] is outcome


def test_paused_rollout_starts_nothing() -> None:
    gate = rollout_gate(RolloutPolicy(paused=True), RolloutStats())
    assert gate == Gate(False, "rollout paused in the collection manifest", GateKind.PAUSED)


HINT = "to resume, change the target or raise failureThreshold in git"


@pytest.mark.parametrize(
    ("threshold", "stats", "halted"),
    [
        # count: that many failed devices halt, whatever the population
        (FailureThreshold(count=2), RolloutStats(started=5, failed=1, population=12), False),
        (FailureThreshold(count=2), RolloutStats(started=5, failed=2, population=12), True),
        # percent: a share of the rollout's population, never of the updates started so far
        (FailureThreshold(percent=25.0), RolloutStats(started=2, failed=1,
                                                      population=100_000), False),
        (FailureThreshold(percent=25.0), RolloutStats(started=8, failed=2, population=12),
         False),
        (FailureThreshold(percent=25.0), RolloutStats(started=8, failed=3, population=12),
         True),
        (FailureThreshold(percent=0.0), RolloutStats(population=12), False),
        (FailureThreshold(percent=25.0), RolloutStats(failed=1, population=0), False),
    ],
)
def test_the_failure_threshold_counts_failures_against_the_rollouts_population(
    threshold: FailureThreshold, stats: RolloutStats, halted: bool,
) -> None:
    gate = rollout_gate(RolloutPolicy(failure_threshold=threshold), stats)
    assert gate.may_start is not halted and gate.halted is halted


def test_a_halt_says_how_many_of_the_population_failed_and_how_to_resume() -> None:
    policy = RolloutPolicy(failure_threshold=FailureThreshold(percent=25.0))
    gate = rollout_gate(policy, RolloutStats(started=6, failed=3, population=12))
    assert gate == Gate(False, f"rollout halted: 3 of 12 devices failed (threshold 25%); "
                               f"{HINT}", GateKind.HALTED)
    by_count = rollout_gate(RolloutPolicy(failure_threshold=FailureThreshold(count=2)),
                            RolloutStats(started=5, failed=2, population=5))
    assert by_count.reason == f"rollout halted: 2 of 5 devices failed (threshold 2); {HINT}"


def test_max_concurrent_allows_starts_only_below_the_cap() -> None:
    policy = RolloutPolicy(max_concurrent=2)
    assert rollout_gate(policy, RolloutStats(in_flight=1)).may_start
    assert rollout_gate(policy, RolloutStats(in_flight=2)) == Gate(
        False, "waiting for a slot: 2 of max 2 updating", GateKind.SLOTS)


def test_device_conditions_follow_the_state_and_keep_their_transition_time() -> None:
    busy = DeviceProgress("d1", "bbbb2", UpdateState.DOWNLOADING, "downloading 2.0")
    first = device_conditions(busy, "rev1", 10.0)
    assert [(c.type, c.status, c.reason) for c in first] == [
        (ConditionType.READY, False, "Downloading"),
        (ConditionType.RECONCILING, True, "Downloading"),
        (ConditionType.STALLED, False, "None"),
    ]
    later = device_conditions(busy, "rev2", 20.0, first)
    assert later[1].last_transition == 10.0 and later[1].revision == "rev2"
    failed = device_conditions(busy.evolve(state=UpdateState.REVERTED), "rev2", 30.0, later)
    assert failed[2].status and failed[2].reason == "Reverted" and failed[2].last_transition == 30


def test_collection_conditions_say_when_the_threshold_halted_the_rollout() -> None:
    counts = {UpdateState.CURRENT: 3, UpdateState.UPDATE_FAILED: 2, UpdateState.PENDING: 5}
    gate = Gate(False, "rollout halted: 2 of 10 devices failed (threshold 2)", GateKind.HALTED)
    ready, _, stalled = collection_conditions(counts, gate, "rev1", 5.0)
    assert not ready.status and stalled.status and stalled.reason == "FailureThreshold"
    done = collection_conditions({UpdateState.CURRENT: 4}, Gate(), "rev1", 6.0)
    assert done[0].status and not done[1].status and not done[2].status


def test_devices_not_seen_yet_count_as_pending_not_updating() -> None:
    ready, reconciling, _ = collection_conditions({UpdateState.PENDING: 4}, Gate(), "r", 1.0)
    assert ready.message == ("0 of 4 devices current, 0 updating, "
                             "4 pending (not started or not seen yet), 0 failed")
    assert reconciling.status and reconciling.reason == "Waiting"
    counts = {UpdateState.PENDING: 1, UpdateState.DOWNLOADING: 2, UpdateState.TIMED_OUT: 1,
              UpdateState.CURRENT: 1}
    ready, reconciling, _ = collection_conditions(counts, Gate(), "r", 2.0)
    assert ready.message.startswith("1 of 5 devices current, 3 updating, 1 pending")
    assert reconciling.reason == "Rollout"


@pytest.mark.parametrize(("kind", "limit", "in_flight", "held", "woken"), [
    (GateKind.SLOTS, 3, 2, 5, 1),  # one slot free: one held device starts
    (GateKind.SLOTS, 3, 4, 5, 0),  # still over the cap (a target change): none
    (GateKind.OPEN, 3, 0, 2, 2),  # never more than are held
    (GateKind.HALTED, 3, 3, 5, 5),  # all of them, so each says why it waits
    (GateKind.PAUSED, 1, 1, 4, 4),
    (GateKind.OPEN, None, 7, 4, 4),  # unlimited
])
def test_a_freed_slot_wakes_as_many_held_devices_as_the_gate_lets_through(
    kind: GateKind, limit: int | None, in_flight: int, held: int, woken: int,
) -> None:
    assert slots_to_release(Gate(kind is GateKind.OPEN, "", kind), limit, in_flight,
                            held) == woken
