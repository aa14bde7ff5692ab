"""End to end with real parts (git repo, `run_service` on loopback, simulated devices):
a maintenance window opening on the injected clock, and drift on a device whose version
is changed behind the controller's back, reported and then corrected."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from controller_harness import (
    COLLECTION,
    DesiredRepo,
    all_in,
    device_id,
    endpoint,
    fleet_of,
    serving,
    settings_for,
    specs,
    states,
    until,
)

from reconciler.model.lwm2m import UpdateResult
from reconciler.model.status import ConditionType, UpdateState
from reconciler.store import open_reader

OPENS = datetime(2026, 12, 1, 1, tzinfo=UTC).timestamp()  # 02:00 in Oslo
NIGHT = {"name": "night", "cron": "0 2 * * *", "duration": "2h", "timeZone": "Europe/Oslo"}
HELD = ("Downloaded; Execute waits for the window night 02:00-04:00 Europe/Oslo, "
        "opens at 2026-12-01T01:00:00Z")


class Clock:
    """The wall clock of the server and the controller, set to a chosen instant; it runs
    at real speed from there and can be moved forward."""

    def __init__(self, at: float) -> None:
        self.offset = at - time.time()

    def __call__(self) -> float:
        return time.time() + self.offset

    def move_to(self, at: float) -> None:
        self.offset = at - time.time()


def _window_status(state: Path) -> dict[str, object]:
    reader = open_reader(state)
    try:
        [status] = [s for s in reader.collection_statuses() if s.collection_id == COLLECTION]
        return dict(status.rollout)
    finally:
        reader.close()


async def test_downloaded_devices_wait_for_the_window_and_install_when_it_opens(
        tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=3, target="2.0",
                       rollout={"maxConcurrent": 3, "windows": [NIGHT]})
    state = tmp_path / "state.db"
    # Registrations live 60 s: the clock starts 45 s before the opening, so moving it
    # there later keeps them alive.
    clock = Clock(OPENS - 45)
    async with serving(settings_for(repo, state), clock) as running, \
            fleet_of(running, specs(3)) as fleet:
        ctl = running.controller
        index = ctl.decider.index
        await until(ctl, lambda: all((p := index.get(device_id(n))) is not None
                                     and p.message == HELD for n in range(3)))
        assert set(states(ctl).values()) == {UpdateState.DOWNLOADED}
        assert [(d.downloads, d.executes) for d in fleet.devices()] == [(1, 0)] * 3
        ctl.decider.flush_status()
        shown = _window_status(state)
        assert shown["nextWindow"] == {
            "name": "night", "gates": "execute", "cron": "0 2 * * *",
            "timeZone": "Europe/Oslo", "durationSeconds": 7200.0, "tags": {},
            "open": False, "opensAt": "2026-12-01T01:00:00Z",
            "closesAt": "2026-12-01T03:00:00Z"}
        clock.move_to(OPENS + 1)
        await fleet.wait_all(lambda d: d.version == "2.0", timeout=30)
        await until(ctl, all_in(ctl, UpdateState.CURRENT))
        assert [d.executes for d in fleet.devices()] == [1] * 3
        assert all((p := index.get(device_id(n))) is not None and p.executed_at is not None
                   and p.executed_at >= OPENS for n in range(3))
        ctl.decider.flush_status()  # the opening passed: the status is written again
        assert _window_status(state)["nextWindow"]["open"] is True  # type: ignore[index]


async def test_a_device_flashed_behind_our_back_is_reported_then_corrected(
        tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=2, target="2.0", drift_policy="report")
    state = tmp_path / "state.db"
    async with serving(settings_for(repo, state)) as running, \
            fleet_of(running, specs(2, version="2.0")) as fleet:
        ctl = running.controller
        index = ctl.decider.index
        await until(ctl, all_in(ctl, UpdateState.CURRENT))
        await fleet.device(endpoint(0)).reboot("1.0", UpdateResult.INITIAL)
        await until(ctl, lambda: (p := index.get(device_id(0))) is not None
                    and p.drift == "runs 1.0, should run 2.0")
        await ctl.queue.idle()
        assert fleet.device(endpoint(0)).version == "1.0"
        assert fleet.device(endpoint(0)).downloads == 0
        assert states(ctl)[device_id(1)] is UpdateState.CURRENT
        ctl.decider.flush_status()
        assert _window_status(state)["drifted"] == 1
        reader = open_reader(state)
        try:
            drifted = {c.type: c for c in reader.conditions(device_id(0))}
            assert drifted[ConditionType.DRIFTED].message == "runs 1.0, should run 2.0"
            [view] = [v for v in reader.devices(COLLECTION) if v.device_id == device_id(0)]
            assert view.state_message == ("drifted: runs 1.0, should run 2.0; "
                                          "driftPolicy report: not corrected")
        finally:
            reader.close()
        repo.drift_policy = "correct"
        repo.commit("correct drift")
        await fleet.device(endpoint(0)).wait_version("2.0")
        await until(ctl, lambda: all_in(ctl, UpdateState.CURRENT)()
                    and index.get(device_id(0)).drift is None)  # type: ignore[union-attr]
