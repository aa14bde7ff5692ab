"""`fota plan`: per collection, who moves from which image to which, and who is blocked."""

from __future__ import annotations

from builders import CID, NEW, OLD, collection, desired_state, device

from reconciler.engine.machine import HOLDS
from reconciler.engine.waves import wave_of
from reconciler.model.desired import (
    DesiredState,
    FailureThreshold,
    Management,
    RolloutPolicy,
    Wave,
)
from reconciler.review.summary import render, summarize
from reconciler.store import DeviceView


def _desired(management: Management = Management.COLLECTION, paused: bool = False,
             rollout: RolloutPolicy | None = None, count: int = 5) -> DesiredState:
    coll = collection(management=management, rollout=rollout or RolloutPolicy(paused=paused))
    return desired_state(coll, devices=[device(f"d{n}") for n in range(count)])


def _view(device_id: str, version: str | None, state: str | None = None,
          target: str | None = None) -> DeviceView:
    return DeviceView(device_id, CID, {}, None, target, version, None, None, None, state, None)


OBSERVED = {
    "d0": _view("d0", "1.0"), "d1": _view("d1", "1.0"), "d2": _view("d2", "2.0"),
    "d3": _view("d3", "1.0", "UpdateFailed", NEW.image_id),
}


def test_devices_are_counted_by_move_current_and_blocked_reason() -> None:
    [plan] = summarize(_desired(), OBSERVED)
    assert dict(plan.moves) == {("1.0", "2.0"): 2, ("unreported", "2.0"): 1}
    assert plan.current == 1
    assert dict(plan.blocked) == {f"UpdateFailed {HOLDS}": 1}


def test_disabled_and_paused_collections_block_every_move() -> None:
    [off] = summarize(_desired(Management.DISABLED), OBSERVED)
    assert dict(off.blocked) == {"firmware management disabled": 5} and not off.moves
    [paused] = summarize(_desired(paused=True), OBSERVED)
    assert dict(paused.blocked) == {"rollout paused in the collection manifest": 3,
                                    f"UpdateFailed {HOLDS}": 1}


def test_a_failure_threshold_already_exceeded_blocks_every_new_start() -> None:
    observed = {**OBSERVED, "d4": _view("d4", "1.0", "Reverted", NEW.image_id),
                "d1": _view("d1", "1.0", "Downloading", NEW.image_id)}
    policy = RolloutPolicy(failure_threshold=FailureThreshold(count=2))
    [plan] = summarize(_desired(rollout=policy), observed)
    halted = ("rollout halted: 2 of 4 devices failed (threshold 2); to resume, raise "
              "rollout.retry (failed devices are retried), change the target or raise "
              "failureThreshold in git")
    assert dict(plan.blocked) == {halted: 1,  # d0; d1 is under way and goes on
                                  f"UpdateFailed {HOLDS}": 1,
                                  f"Reverted {HOLDS}": 1}
    assert dict(plan.moves) == {("1.0", "2.0"): 1}


def test_a_failure_threshold_not_reached_lets_the_moves_start() -> None:
    policy = RolloutPolicy(failure_threshold=FailureThreshold(count=2))
    [plan] = summarize(_desired(rollout=policy), OBSERVED)
    assert sum(plan.moves.values()) == 3 and plan.waiting == 0


def test_a_failure_on_an_older_target_does_not_count_against_this_one() -> None:
    observed = {**OBSERVED, "d3": _view("d3", "1.0", "UpdateFailed", OLD.image_id)}
    policy = RolloutPolicy(failure_threshold=FailureThreshold(count=1))
    [plan] = summarize(_desired(rollout=policy), observed)
    assert not plan.blocked and sum(plan.moves.values()) == 4


def test_max_concurrent_lets_the_free_slots_start_and_the_rest_wait() -> None:
    observed = {f"d{n}": _view(f"d{n}", "1.0") for n in range(10)}
    observed["d0"] = _view("d0", "1.0", "Updating", NEW.image_id)
    [plan] = summarize(_desired(rollout=RolloutPolicy(max_concurrent=3), count=10), observed)
    assert plan.moves[("1.0", "2.0")] == 10
    assert plan.waiting == 7  # 3 slots, one taken by d0: two start now
    assert "  7 of them wait for a slot (maxConcurrent 3)" in render([plan]).splitlines()


def test_the_text_rendering_reads_as_a_plan() -> None:
    text = render(summarize(_desired(), OBSERVED))
    assert text.splitlines() == [
        "collection c0ll (fleet): management collection, target 2.0",
        "  2 devices move 1.0 -> 2.0",
        "  1 device move unreported -> 2.0",
        "  1 already on target",
        f"  1 blocked: UpdateFailed {HOLDS}",
    ]


def test_the_plan_shows_each_wave_with_its_members() -> None:
    waves = (Wave("canary", share=20.0), Wave("lab", tags=(("site", "lab"),)))
    devices = [device(f"d{n}", tags={"site": "lab"} if n < 10 else {}) for n in range(200)]
    desired = desired_state(collection(rollout=RolloutPolicy(waves=waves)), devices=devices)
    observed = {"d0": _view("d0", "2.0"), **{f"d{n}": _view(f"d{n}", "1.0")
                                              for n in range(1, 200)}}
    [plan] = summarize(desired, observed)
    expected = [0, 0, 0]
    for d in devices:
        expected[wave_of(waves, d.device_id, NEW.image_id, d.tags)] += 1
    assert [(name, n) for name, n, _ in plan.waves] == list(zip(
        ("canary", "lab", "the rest"), expected, strict=True))
    assert 25 <= expected[0] <= 55 and sum(on for _, _, on in plan.waves) == 1
    assert render([plan]).splitlines()[3] == "  " + plan.waves_line()
    assert plan.waves_line().startswith(f"waves: canary {expected[0]}")
    assert "(1 on target)" in plan.waves_line()
    assert plan.as_json()["waves"] == [{"name": name, "devices": n, "current": on}
                                       for name, n, on in plan.waves]
