"""`fota serve` as a real subprocess: SIGTERM shuts it down cleanly, and `kill -9` in the
middle of a rollout followed by a restart converges with no device executed twice."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

import pytest
from controller_harness import (
    COLLECTION,
    FAST,
    SIM_TIMING,
    DesiredRepo,
    image_id,
    specs,
)

from reconciler.simulator import Fault, Fleet
from reconciler.store import open_reader

pytestmark = pytest.mark.slow

ENV = {f"FOTA_{k.upper()}": str(v) for k, v in FAST.items()
       if k not in ("coap_port", "http_port")}


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def fota_serve(repo: Path, state: Path, coap_port: int) -> AsyncIterator[
        asyncio.subprocess.Process]:
    """Start `fota serve`, wait for its ready line, and make sure it is gone afterwards.
    Its log goes to `serve.log` beside the state file, to read when a test fails."""
    log = (state.parent / "serve.log").open("ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler.cli", "serve", "--repo", str(repo),
        "--state", str(state), "--coap", f"127.0.0.1:{coap_port}", "--http", "127.0.0.1:0",
        stderr=asyncio.subprocess.PIPE, env={**os.environ, **ENV})
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(30):
            while b"fota serve ready" not in (line := await proc.stderr.readline()):
                log.write(line)
                assert line, "fota serve exited before it was ready"
        drain = asyncio.create_task(_drain(proc.stderr, log))
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    await drain
    log.close()


async def _drain(stream: asyncio.StreamReader, log: BinaryIO) -> None:
    while line := await stream.readline():
        log.write(line)


async def test_sigterm_shuts_fota_serve_down_cleanly(tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    async with fota_serve(repo.root, tmp_path / "s.db", _free_udp_port()) as proc:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0


async def test_kill_9_mid_rollout_then_restart_converges_without_a_second_execute(
    tmp_path: Path,
) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=8)
    state, port = tmp_path / "s.db", _free_udp_port()
    devices = [replace(s, faults=frozenset({Fault.SLOW})) if n % 2 else s
               for n, s in enumerate(specs(8))]
    fleet = Fleet(f"coap://127.0.0.1:{port}", devices,
                  timing=replace(SIM_TIMING, slow_block_delay=0.3))
    try:
        async with fota_serve(repo.root, state, port) as first:
            await fleet.start(wait_registered=True, timeout=20)
            repo.set_target("2.0")
            # Kill once a fast device executed while the slow ones still download.
            await asyncio.wait(
                [asyncio.create_task(d.wait_for(lambda d=d: d.executes >= 1, 30))
                 for d in fleet.devices()], return_when=asyncio.FIRST_COMPLETED)
            first.kill()
        assert any(d.version == "1.0" for d in fleet.devices()), "killed too late to matter"
        async with fota_serve(repo.root, state, port):
            await fleet.wait_all(lambda d: d.version == "2.0", timeout=60)
            assert await _all_current(state, len(devices))
        assert [d.executes for d in fleet.devices()] == [1] * 8
    finally:
        await fleet.stop()


async def _all_current(state: Path, count: int) -> bool:
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
