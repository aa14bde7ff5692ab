"""The Update Result table, the rollout gate and the conditions."""

from __future__ import annotations

import pytest

from reconciler.engine import policy as pol
from reconciler.engine.conditions import collection_conditions, device_conditions
from reconciler.model.desired import FailureThreshold, RolloutPolicy
from reconciler.model.lwm2m import UpdateResult
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import ConditionType, UpdateState


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(0, pol.Outcome.OK), (1, pol.Outcome.OK), (2, pol.Outcome.RETRY), (3, pol.Outcome.RETRY),
     (4, pol.Outcome.RETRY), (5, pol.Outcome.TERMINAL), (6, pol.Outcome.TERMINAL),
     (7, pol.Outcome.TERMINAL), (8, pol.Outcome.RETRY_ONCE), (9, pol.Outcome.TERMINAL),
     (10, pol.Outcome.RETRY), (11, pol.Outcome.RETRY), (42, pol.Outcome.TERMINAL)],
)
def test_every_update_result_code_maps_to_an_outcome(code: int, outcome: pol.Outcome) -> None:
    assert pol.classify(UpdateResult(code))[0] is outcome


def test_paused_rollout_starts_nothing() -> None:
    gate = pol.rollout_gate(RolloutPolicy(paused=True), pol.RolloutStats())
    assert gate == pol.Gate(False, "rollout paused in the collection manifest", pol.GateKind.PAUSED)


HINT = ("to resume, raise rollout.retry (failed devices are retried), change the target "
        "or raise failureThreshold in git")


@pytest.mark.parametrize(
    ("threshold", "stats", "halted"),
    [
        # count: that many failed devices halt, whatever the population
        (FailureThreshold(count=2), pol.RolloutStats(started=5, failed=1, population=12), False),
        (FailureThreshold(count=2), pol.RolloutStats(started=5, failed=2, population=12), True),
        # percent: a share of the rollout's population, never of the updates started so far
        (FailureThreshold(percent=25.0), pol.RolloutStats(started=2, failed=1,
                                                      population=100_000), False),
        (FailureThreshold(percent=25.0), pol.RolloutStats(started=8, failed=2, population=12),
         False),
        (FailureThreshold(percent=25.0), pol.RolloutStats(started=8, failed=3, population=12),
         True),
        (FailureThreshold(percent=0.0), pol.RolloutStats(population=12), False),
        (FailureThreshold(percent=25.0), pol.RolloutStats(failed=1, population=0), False),
    ],
)
def test_the_failure_threshold_counts_failures_against_the_rollouts_population(
    threshold: FailureThreshold, stats: pol.RolloutStats, halted: bool,
) -> None:
    gate = pol.rollout_gate(RolloutPolicy(failure_threshold=threshold), stats)
    assert gate.may_start is not halted and gate.halted is halted


def test_a_halt_says_how_many_of_the_population_failed_and_how_to_resume() -> None:
    policy = RolloutPolicy(failure_threshold=FailureThreshold(percent=25.0))
    gate = pol.rollout_gate(policy, pol.RolloutStats(started=6, failed=3, population=12))
    assert gate == pol.Gate(False, f"rollout halted: 3 of 12 devices failed (threshold 25%); "
                               f"{HINT}", pol.GateKind.HALTED)
    by_count = pol.rollout_gate(RolloutPolicy(failure_threshold=FailureThreshold(count=2)),
                            pol.RolloutStats(started=5, failed=2, population=5))
    assert by_count.reason == f"rollout halted: 2 of 5 devices failed (threshold 2); {HINT}"


def test_max_concurrent_allows_starts_only_below_the_cap() -> None:
    policy = RolloutPolicy(max_concurrent=2)
    assert pol.rollout_gate(policy, pol.RolloutStats(in_flight=1)).may_start
    assert pol.rollout_gate(policy, pol.RolloutStats(in_flight=2)) == pol.Gate(
        False, "waiting for a slot: 2 of max 2 updating", pol.GateKind.SLOTS)


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
    gate = pol.Gate(False, "rollout halted: 2 of 10 devices failed (threshold 2)",
                    pol.GateKind.HALTED)
    ready, _, stalled = collection_conditions(counts, gate, "rev1", 5.0)
    assert not ready.status and stalled.status and stalled.reason == "FailureThreshold"
    done = collection_conditions({UpdateState.CURRENT: 4}, pol.Gate(), "rev1", 6.0)
    assert done[0].status and not done[1].status and not done[2].status


def test_devices_not_seen_yet_count_as_pending_not_updating() -> None:
    ready, reconciling, _ = collection_conditions({UpdateState.PENDING: 4}, pol.Gate(), "r", 1.0)
    assert ready.message == ("0 of 4 devices current, 0 updating, "
                             "4 pending (not started or not seen yet), 0 failed")
    assert reconciling.status and reconciling.reason == "Waiting"
    counts = {UpdateState.PENDING: 1, UpdateState.DOWNLOADING: 2, UpdateState.TIMED_OUT: 1,
              UpdateState.CURRENT: 1}
    ready, reconciling, _ = collection_conditions(counts, pol.Gate(), "r", 2.0)
    assert ready.message.startswith("1 of 5 devices current, 3 updating, 1 pending")
    assert reconciling.reason == "Rollout"


@pytest.mark.parametrize(("kind", "limit", "in_flight", "held", "woken"), [
    (pol.GateKind.SLOTS, 3, 2, 5, 1),  # one slot free: one held device starts
    (pol.GateKind.SLOTS, 3, 4, 5, 0),  # still over the cap (a target change): none
    (pol.GateKind.OPEN, 3, 0, 2, 2),  # never more than are held
    (pol.GateKind.HALTED, 3, 3, 5, 5),  # all of them, so each says why it waits
    (pol.GateKind.PAUSED, 1, 1, 4, 4),
    (pol.GateKind.OPEN, None, 7, 4, 4),  # unlimited
])
def test_a_freed_slot_wakes_as_many_held_devices_as_the_gate_lets_through(
    kind: pol.GateKind, limit: int | None, in_flight: int, held: int, woken: int,
) -> None:
    assert pol.slots_to_release(pol.Gate(kind is pol.GateKind.OPEN, "", kind), limit, in_flight,
                            held) == woken
