"""A push is the LwM2M layer's operation, not a reconcile worker's (issue 8): with one
worker, two push-only devices get their 1 MiB packages at the same time, and both end
Current. Before, the worker sent the first push to its end (~1 s here, 5-40 s on a lossy
link) and the second device waited for it."""

from __future__ import annotations

from pathlib import Path

import controller_harness as harness
from controller_harness import states, until

from reconciler.model.lwm2m import DeliveryMethod, FirmwareState
from reconciler.model.status import UpdateState


async def test_one_worker_runs_two_pushes_at_once(tmp_path: Path) -> None:
    repo = harness.DesiredRepo(tmp_path / "repo", count=2, target="2.0", image_size=1 << 20)
    settings = harness.settings_for(repo, tmp_path / "s.db", workers=1,
                                    min_download_time=60.0)
    devices = harness.specs(2, delivery=DeliveryMethod.PUSH_ONLY)
    async with harness.serving(settings) as running, \
            harness.fleet_of(running, devices) as fleet:
        await fleet.wait_all(lambda d: d.state is FirmwareState.DOWNLOADING, timeout=30)
        # the second push began while the first was still sending (1,025 blocks each)
        assert [d.state for d in fleet.devices()] == [FirmwareState.DOWNLOADING] * 2
        ctl = running.controller
        await until(ctl, lambda: set(states(ctl).values()) == {UpdateState.CURRENT}, 30)
    assert [(d.downloads, d.executes) for d in fleet.devices()] == [(1, 1)] * 2
