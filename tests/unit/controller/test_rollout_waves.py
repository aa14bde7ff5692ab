"""The rollout index's wave counters, the failures it counts, and which held devices a
freed slot or a finished wave wakes."""

from __future__ import annotations

from reconciler.controller.rollout import Placement, RolloutIndex, to_release
from reconciler.engine import OPEN, Gate, GateKind
from reconciler.engine.waves import Position, Stage
from reconciler.model.desired import Collection, FailureThreshold, Management, RolloutPolicy, Wave
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState as S

WAVES = (Wave("canary", soak=60.0), Wave("early"))
COLL = Collection("c", management=Management.COLLECTION, target_image_id="img",
                  rollout=RolloutPolicy(max_concurrent=2, waves=WAVES))


def _index(waves: dict[str, int], live: set[str] | None = None) -> RolloutIndex:
    def place(progress: DeviceProgress) -> Placement:
        return waves.get(progress.device_id, 2), live is None or progress.device_id in live
    return RolloutIndex(place)


def _put(index: RolloutIndex, device_id: str, state: S, at: float = 0.0,
         target: str = "img") -> None:
    index.put("c", DeviceProgress(device_id, target, state, attempts=1, updated_at=at))


def test_failures_toward_an_old_target_never_count_toward_a_halt() -> None:
    coll = Collection("c", management=Management.DEVICE, target_image_id=None,
                      rollout=RolloutPolicy(failure_threshold=FailureThreshold(count=1)))
    index = _index({}, live={"d2"})  # d1's record is about a target it no longer has
    _put(index, "d1", S.UPDATE_FAILED, target="old")
    _put(index, "d2", S.DOWNLOADING)
    assert index.stats("c").failed == 0 and index.gate(coll).may_start
    _put(index, "d2", S.REVERTED)
    assert index.stats("c").failed == 1 and index.gate(coll).halted


def test_a_wave_soaks_from_its_last_member_becoming_current() -> None:
    index = _index({"a": 0, "b": 0, "c": 1})
    for device_id in "abc":
        _put(index, device_id, S.PENDING)
    assert index.gate(COLL, 10.0, wave=1).kind is GateKind.WAITING
    _put(index, "a", S.CURRENT, at=100.0)
    _put(index, "b", S.CURRENT, at=130.0)
    soaking = index.gate(COLL, 150.0, wave=1)
    assert (soaking.kind, soaking.until) == (GateKind.SOAKING, 190.0)
    status = index.status(COLL, "rev", 150.0)
    assert status["waves"] == {
        "current": "canary", "index": 0, "stage": "soaking",
        "gate": "wave canary soaking until 1970-01-01T00:03:10Z", "soakUntil": 190.0,
        "waves": [{"name": "canary", "members": 2, "current": 2, "failed": 0, "inFlight": 0},
                  {"name": "early", "members": 1, "current": 0, "failed": 0, "inFlight": 0},
                  {"name": "the rest", "members": 0, "current": 0, "failed": 0,
                   "inFlight": 0}]}
    assert index.gate(COLL, 190.0, wave=1) == OPEN


def test_a_restart_rebuilds_the_soak_from_the_records() -> None:
    index = _index({"a": 0, "b": 1})
    index.load(("c", DeviceProgress(d, "img", s, updated_at=at))
               for d, s, at in (("a", S.CURRENT, 500.0), ("b", S.PENDING, 10.0)))
    assert index.gate(COLL, 520.0, wave=1).until == 560.0


def test_a_new_revision_moves_records_between_waves() -> None:
    waves = {"a": 0}
    index = _index(waves)
    _put(index, "a", S.PENDING)
    assert index.wave_stats(COLL)[0].members == 1
    waves["a"] = 1
    index.replace("a")
    assert [s.members for s in index.wave_stats(COLL)] == [0, 1, 0]


def test_a_freed_slot_wakes_devices_of_the_waves_that_may_start_lowest_first() -> None:
    held = {0: {"a"}, 1: {"b", "c"}, 2: {"d"}}
    keys = to_release(held, Gate(), Position(1, "early", Stage.RUNNING), 2, 0)
    assert keys[0] == "a" and len(keys) == 2 and held[2] == {"d"}


def test_a_soak_wakes_the_whole_next_wave_to_learn_when_it_ends() -> None:
    held = {1: {"b", "c", "e"}, 2: {"d"}}
    soaking = Position(0, "canary", Stage.SOAKING, "soaking", 99.0)
    assert sorted(to_release(held, Gate(), soaking, 1, 1)) == ["b", "c", "e"]
    assert held == {2: {"d"}}


def test_a_halt_wakes_every_held_device_to_say_why() -> None:
    held = {0: {"a"}, 2: {"d"}}
    halted = Gate(False, "halted", GateKind.HALTED)
    assert sorted(to_release(held, halted, None, 1, 5)) == ["a", "d"] and not held
