"""End to end with real parts: a git repo in tmp_path, `run_service` on loopback, the
simulator fleet. A target commit brings every device to Current; disabled touches
nothing; device scope follows per-device targets; a downgrade works; a bad commit is
not applied."""

from __future__ import annotations

from pathlib import Path

from controller_harness import (
    COLLECTION,
    DesiredRepo,
    all_in,
    device_id,
    endpoint,
    fleet_of,
    image_id,
    serving,
    settings_for,
    specs,
    states,
    until,
)

from reconciler.model.status import UpdateState
from reconciler.store import open_reader

CURRENT = UpdateState.CURRENT


async def test_a_collection_target_commit_brings_every_device_to_current(tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=6)
    state = tmp_path / "state.db"
    async with serving(settings_for(repo, state)) as running, \
            fleet_of(running, specs(6)) as fleet:
        ctl = running.controller
        await until(ctl, all_in(ctl, CURRENT))
        assert all(d.downloads == 0 and d.executes == 0 for d in fleet.devices())
        repo.set_target("2.0")
        await fleet.wait_all(lambda d: d.version == "2.0", timeout=30)
        await until(ctl, lambda: ctl.desired.revision == repo.repo.head.commit.hexsha
                    and all_in(ctl, CURRENT)())
        assert [d.executes for d in fleet.devices()] == [1] * 6
        # Conditions are written in one batch per loop pass, before waiters resume.
        head = repo.repo.head.commit.hexsha
        live = open_reader(state)
        try:
            for n in range(6):
                ready = {c.type.value: c for c in live.conditions(device_id(n))}["Ready"]
                assert (ready.status, ready.reason, ready.revision) == (True, "Current", head)
        finally:
            live.close()
    reader = open_reader(state)
    try:
        views = reader.devices(COLLECTION)
        assert {(v.state, v.current_image_id, v.target_image_id) for v in views} == {
            ("Current", image_id("2.0"), image_id("2.0"))}
        assert reader.applied_revision() == repo.repo.head.commit.hexsha
    finally:
        reader.close()


async def test_a_downgrade_is_just_another_target(tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=3, target="1.0")
    async with serving(settings_for(repo, tmp_path / "s.db")) as running, \
            fleet_of(running, specs(3, version="2.0")) as fleet:
        await fleet.wait_all(lambda d: d.version == "1.0", timeout=30)
        await until(running.controller, all_in(running.controller, CURRENT))


async def test_disabled_management_touches_nothing(tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=3, management="disabled", target="2.0")
    async with serving(settings_for(repo, tmp_path / "s.db")) as running, \
            fleet_of(running, specs(3)) as fleet:
        ctl = running.controller
        await fleet.wait_all(lambda d: d.updates >= 2, timeout=20)  # registered and heard
        await ctl.queue.idle()
        assert states(ctl) == {device_id(n): None for n in range(3)}
        assert all(d.version == "1.0" and d.downloads == 0 and d.executes == 0
                   for d in fleet.devices())


async def test_device_scope_follows_each_devices_own_target(tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=3, management="device", target="3.0",
                       device_targets={0: "2.0", 1: "1.0"})
    async with serving(settings_for(repo, tmp_path / "s.db")) as running, \
            fleet_of(running, specs(3)) as fleet:
        ctl = running.controller
        await fleet.device(endpoint(0)).wait_version("2.0", timeout=30)
        await until(ctl, lambda: states(ctl)[device_id(0)] is CURRENT
                    and states(ctl)[device_id(1)] is CURRENT)
        assert fleet.device(endpoint(1)).downloads == 0  # already on its own target
        assert states(ctl)[device_id(2)] is None  # no target of its own: hands off
        assert fleet.device(endpoint(2)).version == "1.0"


async def test_a_bad_commit_is_not_applied_and_the_fleet_stays_put(tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=3)
    async with serving(settings_for(repo, tmp_path / "s.db")) as running, \
            fleet_of(running, specs(3)) as fleet:
        ctl = running.controller
        good = ctl.desired.revision
        await until(ctl, all_in(ctl, CURRENT))
        bad = repo.set_target("9.9")  # no such image: invalid
        source_errors = await _source_errors(tmp_path / "s.db", bad)
        assert any("9.9" in e for e in source_errors)
        assert ctl.desired.revision == good
        await ctl.queue.idle()
        assert all(d.version == "1.0" and d.downloads == 0 for d in fleet.devices())


async def _source_errors(state: Path, head: str) -> list[str]:
    """The status the API shows once the source has seen `head` (polled across the
    store, which another connection writes)."""
    import asyncio

    reader = open_reader(state)
    try:
        for _ in range(200):
            status = reader.source_status()
            if status.get("head_revision") == head and status.get("errors"):
                return [str(e) for e in status["errors"]]  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)
    finally:
        reader.close()
    raise AssertionError("the source never reported the bad commit")
