"""Waves as decision tables with an injected clock: membership, wave order, gates met and
failed, soak; and the retry counter that gives failed devices a fresh budget."""

from __future__ import annotations

import pytest
from builders import NEW, T0, collection, desired_state, device, registration, report
from builders.engine import delta

from reconciler.engine import DEFAULT_CONFIG, Gate, GateKind, RolloutStats, Wait, decide, retarget
from reconciler.engine.policy import rollout_gate
from reconciler.engine.waves import Position, Stage, WaveStats, rollout_position, wave_of
from reconciler.model.desired import DesiredState, FailureThreshold, RolloutPolicy, Wave
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState as S

CANARY = Wave("canary", share=5.0, soak=1800.0, min_success=95.0,
              failure_threshold=FailureThreshold(count=1))
EARLY = Wave("early", share=25.0, soak=600.0)
LAB = Wave("lab", tags=(("site", "lab"),))
WAVES = (CANARY, EARLY)
IDS = [f"dev{n:05d}" for n in range(20_000)]


def _members(waves: tuple[Wave, ...], target: str = "img", ids: list[str] = IDS,
             tags: dict[str, str] | None = None) -> list[list[str]]:
    found: list[list[str]] = [[] for _ in range(len(waves) + 1)]
    for device_id in ids:
        found[wave_of(waves, device_id, target, tags or {})].append(device_id)
    return found


def test_shares_take_their_part_of_the_fleet_each() -> None:
    canary, early, rest = (len(m) / len(IDS) for m in _members(WAVES))
    assert 0.045 < canary < 0.055 and 0.24 < early < 0.26 and 0.68 < rest < 0.72


def test_the_same_target_picks_the_same_canary_and_another_target_another() -> None:
    first = _members(WAVES)[0]
    assert _members(WAVES)[0] == first
    # Adding devices only adds members: the first 20,000 keep their waves.
    assert [d for d in _members(WAVES, ids=IDS + [f"new{n}" for n in range(5000)])[0]
            if d.startswith("dev")] == first
    other = set(_members(WAVES, target="img2")[0])
    assert len(other & set(first)) < len(first) * 0.2


def test_tags_select_and_devices_in_no_wave_form_the_last() -> None:
    waves = (LAB, EARLY)
    assert wave_of(waves, "dev1", "img", {"site": "lab"}) == 0
    lab_share = Wave("lab", tags=(("site", "lab"),), share=50.0)
    labs = _members((lab_share,), ids=IDS[:4000], tags={"site": "lab"})
    assert 0.46 < len(labs[0]) / 4000 < 0.54
    assert wave_of((LAB,), "dev1", "img", {"site": "oslo"}) == 1
    assert wave_of((), "dev1", "img", {}) == 0


def stats(members: int, current: int = 0, failed: int = 0, in_flight: int = 0,
          at: float = 0.0) -> WaveStats:
    return WaveStats(members, current, failed, in_flight, at)


NOW = T0 + 100_000


@pytest.mark.parametrize(("wave_stats", "expected"), [
    # canary under way: it is the current wave
    ([stats(10, 3, 0, 2), stats(50), stats(140)], Position(0, "canary", Stage.RUNNING)),
    # canary finished 10 minutes ago, soaks 30: the next waits until the soak ends
    ([stats(10, 10, at=NOW - 600), stats(50), stats(140)],
     Position(0, "canary", Stage.SOAKING, "wave canary soaking until 1970-01-13T17:53:20Z",
              NOW + 1200)),
    # canary soaked: early runs
    ([stats(10, 10, at=NOW - 1800), stats(50, 20), stats(140)],
     Position(1, "early", Stage.RUNNING)),
    # both soaked: the rest runs, then is done
    ([stats(10, 10, at=T0), stats(50, 50, at=T0), stats(140, 1)],
     Position(2, "the rest", Stage.RUNNING)),
    ([stats(10, 10, at=T0), stats(50, 50, at=T0), stats(140, 140)],
     Position(2, "the rest", Stage.DONE)),
    # an empty wave passes at once
    ([stats(0), stats(0), stats(3)], Position(2, "the rest", Stage.RUNNING)),
])
def test_waves_run_in_order_and_soak(wave_stats: list[WaveStats], expected: Position) -> None:
    assert rollout_position(WAVES, wave_stats, NOW) == expected


RESUME = "to resume, raise rollout.retry (failed devices are retried) or change the target in git"


def test_a_failed_canary_halts_the_rollout_naming_the_wave() -> None:
    position = rollout_position(WAVES, [stats(10, 5, 1, 4), stats(50), stats(140)], NOW)
    assert position == Position(0, "canary", Stage.HALTED, (
        "rollout halted at wave canary: 1 of 10 devices failed (wave failureThreshold 1); "
        + RESUME))


def test_a_finished_wave_below_min_success_halts() -> None:
    waves = (Wave("canary", min_success=95.0),)
    position = rollout_position(waves, [stats(20, 18, 2), stats(100)], NOW)
    assert position.stage is Stage.HALTED and position.reason == (
        "rollout halted after wave canary: 18 of 20 devices Current (90%), below "
        "minSuccess 95%; " + RESUME)
    # still running: the success rate is not judged yet
    assert rollout_position(waves, [stats(20, 17, 0, 3), stats(100)], NOW).stage is \
        Stage.RUNNING


POLICY = RolloutPolicy(max_concurrent=2, waves=WAVES)
SOAKING = Position(0, "canary", Stage.SOAKING, "wave canary soaking until X", NOW + 50)


@pytest.mark.parametrize(("position", "wave", "in_flight", "expected"), [
    (Position(0, "canary", Stage.RUNNING), 0, 0, Gate()),
    (Position(0, "canary", Stage.RUNNING), 1, 0,
     Gate(False, "waiting for wave canary to finish and pass its gate", GateKind.WAITING)),
    (Position(0, "canary", Stage.RUNNING), 0, 2,
     Gate(False, "waiting for a slot: 2 of max 2 updating", GateKind.SLOTS)),
    (SOAKING, 1, 0, Gate(False, "wave canary soaking until X", GateKind.SOAKING, NOW + 50)),
    (SOAKING, 2, 0, Gate(False, "wave canary soaking until X", GateKind.SOAKING)),
    (SOAKING, 0, 0, Gate()),  # a retried canary device may go on
    (Position(1, "early", Stage.RUNNING), 0, 0, Gate()),
    (Position(0, "canary", Stage.HALTED, "halted at canary"), 0, 0,
     Gate(False, "halted at canary", GateKind.HALTED)),
])
def test_the_gate_for_a_device_of_each_wave(position: Position, wave: int, in_flight: int,
                                            expected: Gate) -> None:
    assert rollout_gate(POLICY, RolloutStats(in_flight=in_flight), position, wave) == expected


def test_a_device_held_by_a_soak_is_looked_at_when_it_ends() -> None:
    gate = rollout_gate(POLICY, RolloutStats(), SOAKING, 1)
    result = decide(delta(rep=report(), reg=registration()), None, NOW, gate)
    assert result.gated and result.wake_at == NOW + 50
    assert result.actions == (Wait("wave canary soaking until X", NOW + 50),)


def _failed(state: S = S.UPDATE_FAILED, retry: int = 0) -> DeviceProgress:
    return DeviceProgress("d1", NEW.image_id, state, "integrity check failure", attempts=4,
                          retries_left=0, updated_at=T0, executed_at=T0, retry=retry)


def _with_retry(collection_retry: int, device_retry: int = 0) -> DesiredState:
    return desired_state(collection(rollout=RolloutPolicy(retry=collection_retry)),
                         devices=[device(retry=device_retry)])


@pytest.mark.parametrize("state", [S.UPDATE_FAILED, S.REVERTED, S.TIMED_OUT])
def test_a_raised_retry_counter_gives_a_failed_device_a_fresh_budget(state: S) -> None:
    result = retarget(delta(_with_retry(1), report(), registration()), _failed(state), NOW)
    record = result.progress
    assert record is not None and record.state is S.PENDING
    assert (record.retries_left, record.retry, record.attempts) == \
        (DEFAULT_CONFIG.max_retries, 1, 4)
    assert record.executed_at is None and record.next_attempt_at is None
    assert record.message == "retry 1 requested in git: update to 2.0 pending"
    assert [e.message for e in result.events] == [
        f"{state.value} -> Pending: retry 1 requested in git: update to 2.0 pending"]


def test_a_device_counter_adds_to_the_collection_counter() -> None:
    result = retarget(delta(_with_retry(1, 2), report(), registration()), _failed(retry=1), NOW)
    assert result.progress is not None and result.progress.state is S.PENDING
    assert result.progress.retry == 3


def test_a_counter_already_seen_retries_nothing_again() -> None:
    seen = _failed(retry=1)
    result = decide(delta(_with_retry(1), report(), registration()), seen, NOW)
    assert result.progress is seen and not result.events


def test_a_raised_counter_only_records_itself_on_a_device_not_failed() -> None:
    busy = _failed(S.DOWNLOADING).evolve(retries_left=2)
    result = retarget(delta(_with_retry(2), report(), registration()), busy, NOW)
    assert result.progress == busy.evolve(retry=2) and not result.events


def test_a_lowered_counter_is_recorded_so_the_next_raise_retries() -> None:
    lowered = retarget(delta(_with_retry(0), report(), registration()), _failed(retry=2), NOW)
    assert lowered.progress is not None and lowered.progress.state is S.UPDATE_FAILED
    assert lowered.progress.retry == 0
    raised = retarget(delta(_with_retry(1), report(), registration()), lowered.progress, NOW)
    assert raised.progress is not None and raised.progress.state is S.PENDING
