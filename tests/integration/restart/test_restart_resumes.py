"""`kill -9` of a real `fota serve` and a restart: the fleet is not forgotten.

Devices stay registered across the restart (their lifetime has not run out) and send
nothing meanwhile, yet the restarted server drives them at once, and a download that the
kill interrupted resumes on the same URI with no retry spent and no second Execute."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from controller_harness import COLLECTION, SIM_TIMING, DesiredRepo, specs
from serve_process import fota_serve, free_udp_port, until_all_current

from reconciler.lwm2m.pushes import NOTE_BLOCKS
from reconciler.model.lwm2m import FW_STATE, DeliveryMethod, FirmwareState
from reconciler.model.lwm2m import Path as LwPath
from reconciler.simulator import DeviceSpec, Fault, Fleet
from reconciler.store import open_reader

pytestmark = pytest.mark.slow

QUIET = replace(SIM_TIMING, update_every=600.0)  # no Update for 10 minutes


def _specs(count: int) -> list[DeviceSpec]:
    return [replace(s, lifetime=900) for s in specs(count)]


def _restart_status(state: Path) -> dict[str, object]:
    reader = open_reader(state)
    try:
        return reader.restart_status()
    finally:
        reader.close()


def _progress(state: Path) -> list[tuple[str, int, int]]:
    """(state, attempts, retries_left) of every device, read after the server is gone."""
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT state, attempts, retries_left FROM progress "
                            "ORDER BY device_id").fetchall()
    return [(str(s), int(a), int(r)) for s, a, r in rows]


async def _killed_mid_download(repo: DesiredRepo, state: Path, port: int,
                               env: dict[str, str], fleet: Fleet) -> None:
    """`fota serve` started, the fleet retargeted to 2.0, and the server killed (SIGKILL)
    once every device is Downloading: each holds part of its download."""
    async with fota_serve(repo.root, state, port, env) as first:
        await fleet.start(wait_registered=True, timeout=60)
        repo.set_target("2.0")
        await fleet.wait_all(lambda d: d.state is FirmwareState.DOWNLOADING, timeout=60)
        first.kill()
    assert all(d.state is FirmwareState.DOWNLOADING for d in fleet.devices())


async def test_a_restart_drives_registered_devices_at_once_without_waiting_for_an_update(
        tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=4)
    state, port = tmp_path / "s.db", free_udp_port()
    fleet = Fleet(f"coap://127.0.0.1:{port}", _specs(4), timing=QUIET)
    try:
        async with fota_serve(repo.root, state, port) as first:
            await fleet.start(wait_registered=True, timeout=60)
            first.kill()
        repo.set_target("2.0")  # applied by the restarted server as its first revision
        async with fota_serve(repo.root, state, port):
            # 60 s (a loaded machine): the devices' next Update is 10 minutes away
            await fleet.wait_all(lambda d: d.version == "2.0", timeout=60)
            await until_all_current(state, 4, timeout=60)
            restart = _restart_status(state)
        assert restart["registrations"] == 4
        assert [(d.updates, d.executes) for d in fleet.devices()] == [(0, 1)] * 4
        # one Register before the kill, one after the new firmware booted: none forced
        assert [d.registrations for d in fleet.devices()] == [2] * 4
    finally:
        await fleet.stop(deregister=False)  # the server is gone: De-registering only waits out
        # Timing.deregister_timeout (3 s) for nothing


async def test_kill_9_mid_download_resumes_on_the_same_uri_without_a_retry_spent(
        tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=4, image_size=48 * 512)
    state, port = tmp_path / "s.db", free_udp_port()
    devices = [replace(s, faults=frozenset({Fault.SLOW})) for s in _specs(4)]
    fleet = Fleet(f"coap://127.0.0.1:{port}", devices,
                  timing=replace(QUIET, slow_block_delay=0.05))
    # Deadlines long enough that the restart itself is not what is timed here, and polls
    # rare enough that only a renewed Observe tells the restarted server of the downloads.
    env = {"FOTA_MIN_DOWNLOAD_TIME": "60", "FOTA_POLL_INTERVAL": "120"}
    try:
        await _killed_mid_download(repo, state, port, env, fleet)
        async with fota_serve(repo.root, state, port, env):
            await fleet.wait_all(lambda d: d.version == "2.0", timeout=80)
            await until_all_current(state, 4, timeout=60)
            restart = _restart_status(state)
        assert restart == {**restart, "registrations": 4, "offers": 4}
        assert [(d.downloads, d.executes) for d in fleet.devices()] == [(1, 1)] * 4
        assert _progress(state) == [("Current", 1, 2)] * 4  # FAST: max_retries 2
    finally:
        await fleet.stop(deregister=False)  # the server is gone: De-registering only waits out
        # Timing.deregister_timeout (3 s) for nothing


def _executed_at(state: Path, device: str) -> float | None:
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT executed_at FROM progress WHERE device_id = ?",
                           (device,)).fetchone()
    return None if row is None or row[0] is None else float(row[0])


FW_INSTANCE = LwPath(5, 0)


async def test_kill_9_after_executed_at_is_persisted_but_before_execute_arrives(
        tmp_path: Path) -> None:
    """The device never gets the Execute (it is deaf from the moment it holds the
    download until the server is gone), while the store durably says it was sent. The
    restarted server asks the device, sees /5/0/3 = 2 with no failure and executes once:
    no update_timeout (900 s here) waited out, no retry spent, no second install."""
    repo = DesiredRepo(tmp_path / "repo", count=1)
    state, port = tmp_path / "s.db", free_udp_port()
    # A slow download, so the server's Observe of /5/0/3 is in place before it ends: the
    # server learns Downloaded from the notification sent just before the device goes deaf.
    spec = replace(_specs(1)[0], faults=frozenset({Fault.SLOW}))
    fleet = Fleet(f"coap://127.0.0.1:{port}", [spec],
                  timing=replace(QUIET, slow_block_delay=0.3))
    [device] = fleet.devices()
    env = {"FOTA_UPDATE_TIMEOUT": "900", "FOTA_PROBE_DELAY": "1"}
    observed: list[bool] = []

    def deaf_once_downloaded() -> bool:
        if device.state is FirmwareState.DOWNLOADED and not device.silent:
            # /5/0/3 observed, by itself or within its instance (/5/0, one Observe)
            observed.append(bool({FW_STATE, FW_INSTANCE} & set(device.observers.paths())))
            device.silent = True  # synchronously, before any Execute can reach it
        return device.silent

    try:
        async with fota_serve(repo.root, state, port, env) as first:
            await fleet.start(wait_registered=True, timeout=60)
            repo.set_target("2.0")
            await device.wait_for(deaf_once_downloaded, timeout=60)
            assert observed == [True], "the server did not observe /5/0/3 in time"
            async with asyncio.timeout(20):
                while _executed_at(state, "d000000") is None:
                    await asyncio.sleep(0.02)  # another process writes it: nothing to await
            first.kill()
        assert (device.executes, device.version) == (0, "1.0")
        device.silent = False
        async with fota_serve(repo.root, state, port, env):
            await device.wait_version("2.0", timeout=60)
            await until_all_current(state, 1)
        assert device.executes == 1
        assert _progress(state) == [("Current", 1, 2)]
    finally:
        await fleet.stop(deregister=False)  # the server is gone: De-registering only waits out
        # Timing.deregister_timeout (3 s) for nothing


def _push_position(state: Path) -> tuple[int, int] | None:
    """(next block, block size) the state file holds for the one push, read after the
    server that wrote it is gone."""
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT acknowledged, szx FROM push_positions").fetchone()
    return None if row is None else (int(row[0]) >> (int(row[1]) + 4), 1 << (int(row[1]) + 4))


KILL_AT = 400  # push blocks the device received before the SIGKILL (of 1,025)


async def test_kill_9_mid_push_resumes_at_the_persisted_block_without_a_retry_spent(
        tmp_path: Path) -> None:
    """A push-only device (/5/0/9 = 1) holds 400 blocks of a 1 MiB push when the server
    is killed. The restarted server finds it Downloading with no push running: it pushes
    again at once (not after the download deadline, 10 minutes here), from the block the
    state file says the device had acknowledged, not from block 0. That position is at
    most 2 x NOTE_BLOCKS blocks behind the device (`lwm2m.pushes`), and the device takes
    a block it already has again: that many blocks go out twice, not 400."""
    repo = DesiredRepo(tmp_path / "repo", count=1, image_size=1 << 20)
    image = tmp_path / "repo" / "images" / COLLECTION / "fw-2.0.bin"
    blocks = -(-image.stat().st_size // 1024)  # 1,025: the package's header too
    state, port = tmp_path / "s.db", free_udp_port()
    devices = [replace(s, delivery=DeliveryMethod.PUSH_ONLY) for s in _specs(1)]
    fleet = Fleet(f"coap://127.0.0.1:{port}", devices, timing=QUIET)
    [device] = fleet.devices()
    env = {"FOTA_MIN_DOWNLOAD_TIME": "600", "FOTA_POLL_INTERVAL": "120"}
    try:
        async with fota_serve(repo.root, state, port, env) as first:
            await fleet.start(wait_registered=True, timeout=60)
            repo.set_target("2.0")
            await device.wait_for(lambda: device.blocks_pushed >= KILL_AT, timeout=60)
            first.kill()
        received = device.pushed_blocks
        assert device.state is FirmwareState.DOWNLOADING and received == list(
            range(len(received)))  # one push, in order, cut short
        position = _push_position(state)
        assert position is not None, "no push position in the state file"
        persisted, size = position
        assert size == 1024 and 0 < persisted <= len(received)
        assert len(received) - persisted <= 2 * NOTE_BLOCKS + 2  # bounded lag
        async with fota_serve(repo.root, state, port, env):
            # 120 s, a fifth of the download deadline (600 s) the old engine waited out
            await fleet.wait_all(lambda d: d.version == "2.0", timeout=120)
            await until_all_current(state, 1, timeout=60)
        after = device.pushed_blocks[len(received):]
        assert after == list(range(persisted, blocks)), after[:5]  # resumed where stored
        twice = len(received) - persisted
        assert device.blocks_pushed == blocks + twice and twice <= 2 * NOTE_BLOCKS + 2
        assert [(d.downloads, d.executes) for d in fleet.devices()] == [(1, 1)]
        assert _progress(state) == [("Current", 1, 2)]  # FAST: max_retries 2
        assert _push_position(state) is None  # delivered: nothing left to resume
    finally:
        await fleet.stop(deregister=False)
