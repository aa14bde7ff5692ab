"""End to end: each simulator fault ends in the right state, and the rollout guards hold.

Real service on loopback, real simulator devices with injected faults; the tests await
device and progress changes, never fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import controller_harness as harness
import pytest
from controller_harness import device_id, states, until

from reconciler.controller.core import Controller
from reconciler.model.lwm2m import FirmwareState, UpdateResult
from reconciler.model.status import UpdateState
from reconciler.simulator import Fault, SimDevice, Timing
from reconciler.store import open_reader

S = UpdateState


def _progress(ctl: Controller, n: int = 0) -> Any:
    return ctl.decider.index.get(device_id(n))


def _state_is(ctl: Controller, state: UpdateState, n: int = 0) -> Any:
    return lambda: states(ctl)[device_id(n)] is state


@asynccontextmanager
async def _one_device_with(tmp_path: Path, fault: Fault, timing: Timing = harness.SIM_TIMING,
                           **overrides: Any) -> AsyncIterator[tuple[Controller, SimDevice]]:
    """The service and one device on 1.0 with `fault` injected, targeted at 2.0."""
    repo = harness.DesiredRepo(tmp_path / "repo", count=1, target="2.0")
    settings = harness.settings_for(repo, tmp_path / "s.db", **overrides)
    async with harness.serving(settings) as running, \
            harness.fleet_of(running, harness.specs(1, faults=frozenset({fault})), timing) as fleet:
        yield running.controller, fleet.device(harness.endpoint(0))


async def test_a_lost_connection_is_offered_again_and_then_current(tmp_path: Path) -> None:
    async with _one_device_with(tmp_path, Fault.CONNECTION_LOST) as (ctl, device):
        await device.wait_state(FirmwareState.IDLE, UpdateResult.CONNECTION_LOST, timeout=20)
        device.clear(Fault.CONNECTION_LOST)
        await device.wait_version("2.0", timeout=20)
        await until(ctl, _state_is(ctl, S.CURRENT))
        # the link's loss (Update Result 4) is offered again in the attempt (engine.pulling)
        progress = _progress(ctl)
        assert (progress.attempts, progress.resumes, device.executes) == (1, 1, 1)
        assert progress.retries_left == ctl.settings.engine.max_retries


@pytest.mark.parametrize(("fault", "message"), [
    (Fault.INTEGRITY, "integrity"),
    (Fault.UNSUPPORTED, "unsupported package type"),
])
async def test_an_integrity_or_package_type_failure_is_terminal_for_the_image(
        tmp_path: Path, fault: Fault, message: str) -> None:
    async with _one_device_with(tmp_path, fault) as (ctl, device):
        await until(ctl, _state_is(ctl, S.UPDATE_FAILED))
        await device.wait_for(lambda: device.updates >= 2)  # a later look changes nothing
        await ctl.queue.idle()
        progress = _progress(ctl)
        assert progress.state is S.UPDATE_FAILED and progress.attempts == 1
        assert message in progress.message
        assert (device.executes, device.version) == (0, "1.0")


async def test_a_slow_download_within_its_deadline_ends_current(tmp_path: Path) -> None:
    slow = replace(harness.SIM_TIMING, slow_block_delay=0.15)  # 5 blocks: under a second in all
    async with _one_device_with(tmp_path, Fault.SLOW, slow) as (ctl, device):
        began = time.monotonic()
        await device.wait_version("2.0", timeout=20)
        await until(ctl, _state_is(ctl, S.CURRENT))
        assert time.monotonic() - began >= 4 * slow.slow_block_delay  # it was slow
        assert _progress(ctl).attempts == 1 and device.executes == 1


async def test_a_stuck_download_times_out_and_the_retry_succeeds(tmp_path: Path) -> None:
    async with _one_device_with(tmp_path, Fault.SLOW, min_download_time=0.5) as (ctl, device):
        await until(ctl, _state_is(ctl, S.TIMED_OUT))
        device.clear(Fault.SLOW)
        await device.wait_version("2.0", timeout=20)
        await until(ctl, _state_is(ctl, S.CURRENT))
        assert _progress(ctl).attempts == 2


async def test_a_failed_install_is_retried_once_then_update_failed(tmp_path: Path) -> None:
    async with _one_device_with(tmp_path, Fault.UPDATE_FAILED) as (ctl, device):
        await until(ctl, _state_is(ctl, S.UPDATE_FAILED))
        assert (device.executes, device.version, _progress(ctl).attempts) == (2, "1.0", 2)
        assert "Update Result 8" in _progress(ctl).message


async def test_a_device_back_on_the_old_version_is_reverted(tmp_path: Path) -> None:
    async with _one_device_with(tmp_path, Fault.REVERT) as (ctl, device):
        await until(ctl, _state_is(ctl, S.REVERTED))
        assert device.executes == 1
        assert _progress(ctl).message == "device came back running 1.0, not 2.0"


async def test_max_concurrent_is_never_exceeded(tmp_path: Path) -> None:
    repo = harness.DesiredRepo(tmp_path / "repo", count=6, rollout={"maxConcurrent": 2})
    async with harness.serving(harness.settings_for(repo, tmp_path / "s.db")) as running, \
            harness.fleet_of(running, harness.specs(6)) as fleet:
        ctl = running.controller
        await until(ctl, lambda: all(s is S.CURRENT for s in states(ctl).values()))
        peak = {"controller": 0, "devices": 0}

        def converged() -> bool:
            busy = sum(d.state is not FirmwareState.IDLE for d in fleet.devices())
            peak["devices"] = max(peak["devices"], busy)
            in_flight = ctl.decider.index.stats(harness.COLLECTION).in_flight
            peak["controller"] = max(peak["controller"], in_flight)
            return all(d.version == "2.0" for d in fleet.devices()) and all(
                s is S.CURRENT for s in states(ctl).values())

        repo.set_target("2.0")
        await until(ctl, converged, timeout=40)
        assert peak["controller"] == 2 and peak["devices"] <= 2


async def test_the_failure_threshold_halts_new_starts_until_raised_in_git(
        tmp_path: Path) -> None:
    repo = harness.DesiredRepo(tmp_path / "repo", count=5, target="2.0",
                       rollout={"maxConcurrent": 1, "failureThreshold": 2})
    state = tmp_path / "s.db"
    bad = frozenset({Fault.INTEGRITY})
    async with harness.serving(harness.settings_for(repo, state)) as running, \
            harness.fleet_of(running, harness.specs(5, faults=bad)):
        ctl = running.controller
        failed = lambda: sum(s is S.UPDATE_FAILED for s in states(ctl).values())  # noqa: E731
        await until(ctl, lambda: failed() == 2)
        await ctl.queue.idle()
        attempts = sorted(p.attempts for d in ctl.desired.devices
                          if (p := ctl.decider.index.get(d)) is not None)
        assert attempts == [0, 0, 0, 1, 1]
        held = [p for d in ctl.desired.devices if (p := ctl.decider.index.get(d)) is not None
                and p.state is S.PENDING]
        assert len(held) == 3 and all("rollout halted" in p.message for p in held)
        assert ctl.decider.index.gate(ctl.desired.collections[harness.COLLECTION]).reason == (
            "rollout halted: 2 of 5 devices failed (threshold 2); "
            "to resume, raise rollout.retry (failed devices are retried), change the target "
            "or raise failureThreshold in git")
        repo.rollout = {"maxConcurrent": 1, "failureThreshold": 4}
        repo.commit("raise the failure threshold")
        await until(ctl, lambda: failed() == 4)
        await ctl.queue.idle()
        ctl.decider.flush_status()
    reader = open_reader(state)
    try:
        [status] = [s for s in reader.collection_statuses()
                    if s.collection_id == harness.COLLECTION]
        assert status.rollout["halted"] is True
        assert str(status.rollout["reason"]).startswith(
            "rollout halted: 4 of 5 devices failed (threshold 4); to resume")
    finally:
        reader.close()
