"""End to end: a rollout in waves over a simulated fleet of a few hundred devices, a
failing canary that halts it before wave 2, and a retry raised in git that resumes it.

Real service on loopback, real simulator devices, a real git repository; the order of
the waves is checked from the event history the controller persisted (when each device
left Pending and when it became Current), not by sampling."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import controller_harness as harness
from controller_harness import COLLECTION, device_id, image_id, states, until

from reconciler.controller.core import Controller
from reconciler.engine.waves import wave_of
from reconciler.model.status import UpdateState
from reconciler.simulator import Fault
from reconciler.store import open_reader

S = UpdateState
# Registration Updates every 30 s, not every second: a few hundred devices would spend
# the test's time on Updates instead of the rollout.
QUIET = replace(harness.SIM_TIMING, update_every=30.0)
THREE_WAVES = [{"name": "canary", "share": "5%", "soak": "1s", "failureThreshold": 1},
               {"name": "early", "share": "30%", "soak": "1s", "minSuccess": "90%"}]


def _waves(ctl: Controller, count: int) -> list[int]:
    waves = ctl.desired.collections[COLLECTION].rollout.waves
    return [wave_of(waves, device_id(n), image_id("2.0"), {}) for n in range(count)]


def _times(state: Path, count: int) -> tuple[list[float], list[float]]:
    """Per device: when it left Pending for 2.0, and when it became Current on it."""
    reader = open_reader(state)
    try:
        started, current = [], []
        for n in range(count):
            events = [e for e in reader.events(device_id(n), 50) if e.kind == "state"]
            started.append(min(e.at for e in events if e.message.startswith("Pending ->")))
            current.append(max(e.at for e in events if " -> Current" in e.message))
        return started, current
    finally:
        reader.close()


async def test_a_few_hundred_devices_go_through_three_waves_in_order(tmp_path: Path) -> None:
    count = 200
    repo = harness.DesiredRepo(tmp_path / "repo", count=count, target="2.0",
                               rollout={"maxConcurrent": 50, "waves": THREE_WAVES})
    state = tmp_path / "s.db"
    async with harness.serving(harness.settings_for(repo, state)) as running, \
            harness.fleet_of(running, harness.specs(count), QUIET) as fleet:
        ctl = running.controller
        await until(ctl, harness.all_in(ctl, S.CURRENT), timeout=120)
        assert all(d.version == "2.0" and d.executes == 1 for d in fleet.devices())
        status = ctl.decider.index.status(ctl.desired.collections[COLLECTION], "r",
                                          ctl.clock())
    waves = _waves(ctl, count)
    sizes = [waves.count(w) for w in range(3)]
    assert 3 <= sizes[0] <= 20 and 40 <= sizes[1] <= 80 and sum(sizes) == count
    started, current = _times(state, count)
    for wave in (1, 2):  # each wave starts after the one before finished and soaked 1 s
        before = max(current[n] for n in range(count) if waves[n] == wave - 1)
        first = min(started[n] for n in range(count) if waves[n] == wave)
        assert first >= before + 1.0
    assert status["waves"] == {
        "current": "the rest", "index": 2, "stage": "done", "gate": "passed",
        "soakUntil": None,
        "waves": [{"name": name, "members": size, "current": size, "failed": 0,
                   "inFlight": 0} for name, size in zip(
                       ("canary", "early", "the rest"), sizes, strict=True)]}


async def test_a_failing_canary_halts_before_wave_two_and_a_retry_resumes(
        tmp_path: Path) -> None:
    count = 60
    repo = harness.DesiredRepo(tmp_path / "repo", count=count, target="1.0",
                               rollout={"maxConcurrent": 10, "waves": THREE_WAVES[:1]})
    state = tmp_path / "s.db"
    async with harness.serving(harness.settings_for(repo, state)) as running:
        ctl = running.controller
        repo.set_target("2.0")
        await until(ctl, lambda: ctl.desired.collections[COLLECTION].target_image_id
                    == image_id("2.0"))
        waves = _waves(ctl, count)
        canary = [n for n in range(count) if waves[n] == 0]
        bad = canary[0]
        devices = [replace(spec, faults=frozenset({Fault.INTEGRITY})) if n == bad else spec
                   for n, spec in enumerate(harness.specs(count))]
        async with harness.fleet_of(running, devices, QUIET) as fleet:
            await until(ctl, lambda: states(ctl)[device_id(bad)] is S.UPDATE_FAILED
                        and all(states(ctl)[device_id(n)] is S.CURRENT
                                for n in canary if n != bad), timeout=60)
            await ctl.queue.idle()
            collection = ctl.desired.collections[COLLECTION]
            gate = ctl.decider.index.gate(collection, ctl.clock())
            assert gate.halted and gate.reason == (
                "rollout halted at wave canary: 1 of "
                f"{len(canary)} devices failed (wave failureThreshold 1); to resume, raise "
                "rollout.retry (failed devices are retried) or change the target in git")
            ctl.decider.flush_status()
            reader = open_reader(state)
            try:
                [shown] = reader.collection_statuses()  # what /status serves
            finally:
                reader.close()
            assert shown.rollout["halted"] is True and shown.rollout["reason"] == gate.reason
            assert {k: shown.rollout["waves"][k] for k in ("current", "stage", "gate")} == {
                "current": "canary", "stage": "halted", "gate": gate.reason}
            rest = [n for n in range(count) if waves[n] == 1]
            assert all(fleet.device(harness.endpoint(n)).downloads == 0 for n in rest)
            assert {states(ctl)[device_id(n)] for n in rest} == {S.PENDING}

            fleet.device(harness.endpoint(bad)).clear(Fault.INTEGRITY)
            repo.rollout = {**repo.rollout, "retry": 1}
            repo.commit("retry the canary")
            await until(ctl, harness.all_in(ctl, S.CURRENT), timeout=90)
            assert fleet.device(harness.endpoint(bad)).executes == 1
            progress = ctl.decider.index.get(device_id(bad))
            assert progress is not None and progress.retry == 1 and progress.attempts == 2
