"""End to end: queue-mode devices are contacted only in the window right after they speak,
and push-only devices get the package written to /5/0/0."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import controller_harness as harness
from controller_harness import states, until

from reconciler.model.lwm2m import DeliveryMethod
from reconciler.model.status import UpdateState


async def test_queue_mode_devices_are_only_contacted_right_after_they_speak(
    tmp_path: Path,
) -> None:
    repo = harness.DesiredRepo(tmp_path / "repo", count=3)
    timing = replace(harness.SIM_TIMING, update_every=3.0, queue_window=0.6)
    settings = harness.settings_for(repo, tmp_path / "s.db", awake_window=0.5)
    async with harness.serving(settings) as running, \
            harness.fleet_of(running, harness.specs(3, queue_mode=True), timing) as fleet:
        ctl = running.controller
        await until(ctl, lambda: all(s is UpdateState.CURRENT for s in states(ctl).values()))
        # Falling asleep is the passing of time, not an event: wait out the window once.
        await asyncio.sleep(timing.queue_window + 0.1)
        assert not any(d.awake for d in fleet.devices())
        repo.set_target("2.0")
        await until(ctl, lambda: ctl.desired.revision == repo.repo.head.commit.hexsha)
        await ctl.queue.idle()
        assert {s for s in states(ctl).values()} == {UpdateState.PENDING}  # waiting for them
        await until(ctl, lambda: all(s is UpdateState.CURRENT for s in states(ctl).values())
                    and all(d.version == "2.0" for d in fleet.devices()), timeout=40)
        assert [d.dropped_asleep for d in fleet.devices()] == [0, 0, 0]
        assert [d.executes for d in fleet.devices()] == [1, 1, 1]


async def test_a_push_only_device_gets_the_package_pushed(tmp_path: Path) -> None:
    repo = harness.DesiredRepo(tmp_path / "repo", count=1, target="2.0")
    async with harness.serving(harness.settings_for(repo, tmp_path / "s.db")) as running, \
            harness.fleet_of(running, harness.specs(1, delivery=DeliveryMethod.PUSH_ONLY)) as fleet:
        device = fleet.device(harness.endpoint(0))
        await device.wait_version("2.0", timeout=20)
        ctl = running.controller
        await until(ctl, lambda: all(s is UpdateState.CURRENT for s in states(ctl).values()))
        assert device.fw.package_uri == "" and device.executes == 1
