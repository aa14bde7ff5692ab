"""`fota serve` as a real subprocess: SIGTERM shuts it down cleanly, and `kill -9` in the
middle of a rollout followed by a restart converges with no device executed twice."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import replace
from pathlib import Path

import pytest
from controller_harness import (
    COLLECTION,
    SIM_TIMING,
    DesiredRepo,
    image_id,
    specs,
)
from serve_process import fota_serve, free_udp_port

from reconciler.simulator import Fault, Fleet
from reconciler.store import open_reader

pytestmark = pytest.mark.slow


async def test_sigterm_shuts_fota_serve_down_cleanly(tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    async with fota_serve(repo.root, tmp_path / "s.db", free_udp_port()) as proc:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
async def test_kill_9_mid_rollout_then_restart_converges_without_a_second_execute(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest,
) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=8)
    state: Path | str = tmp_path / "s.db"
    env: dict[str, str] = {}
    if engine == "postgresql":  # `fota serve --state postgresql://...` (issue 13)
        state = request.getfixturevalue("pg_url")
        env = {"FOTA_CACHE_DIR": str(tmp_path / "cache")}
    port = free_udp_port()
    devices = [replace(s, faults=frozenset({Fault.SLOW})) if n % 2 else s
               for n, s in enumerate(specs(8))]
    fleet = Fleet(f"coap://127.0.0.1:{port}", devices,
                  timing=replace(SIM_TIMING, slow_block_delay=0.3))
    try:
        async with fota_serve(repo.root, state, port, env, log_dir=tmp_path) as first:
            await fleet.start(wait_registered=True, timeout=20)
            repo.set_target("2.0")
            # Kill once a fast device executed while the slow ones still download.
            await asyncio.wait(
                [asyncio.create_task(d.wait_for(lambda d=d: d.executes >= 1, 30))
                 for d in fleet.devices()], return_when=asyncio.FIRST_COMPLETED)
            first.kill()
        assert any(d.version == "1.0" for d in fleet.devices()), "killed too late to matter"
        async with fota_serve(repo.root, state, port, env, log_dir=tmp_path):
            await fleet.wait_all(lambda d: d.version == "2.0", timeout=60)
            assert await _all_current(state, len(devices))
        assert [d.executes for d in fleet.devices()] == [1] * 8
    finally:
        await fleet.stop(deregister=False)  # the server is gone: De-registering only waits out
        # Timing.deregister_timeout (3 s) for nothing


async def _all_current(state: Path | str, count: int) -> bool:
    """Poll the store another process writes until every device shows Current."""
    reader = open_reader(state)
    try:
        for _ in range(300):
            views = reader.devices(COLLECTION)
            done = {(v.state, v.current_image_id) for v in views}
            if len(views) == count and done == {("Current", image_id("2.0"))}:
                return True
            await asyncio.sleep(0.05)
        return False
    finally:
        reader.close()
