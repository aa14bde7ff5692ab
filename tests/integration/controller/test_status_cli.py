"""`fota status` as a real subprocess against `run_service` on loopback with the simulator
fleet: the summary table, one device's timeline, and `--watch` following a rollout to
its end (exit 0) or to its halt (exit 1), driven by /events."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path

import pytest
from builders.tools import communicated
from controller_harness import (
    COLLECTION,
    DesiredRepo,
    device_id,
    fleet_of,
    serving,
    settings_for,
    specs,
)

from reconciler.simulator import Fault

pytestmark = pytest.mark.slow


def status_args(port: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler.cli", "status", "--api",
            f"http://127.0.0.1:{port}", *args]


async def fota_status(port: int, *args: str, timeout: float = 60) -> tuple[int, str]:
    """(exit code, stdout) of `fota status --api ... ARGS`; stdout is a pipe: plain lines."""
    proc = await asyncio.create_subprocess_exec(
        *status_args(port, *args), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    return await finish(proc, timeout)


async def finish(proc: asyncio.subprocess.Process, timeout: float = 60) -> tuple[int, str]:
    code, out, err = await communicated(proc, timeout)
    return code, out.decode() + err.decode()


def fractions(out: str) -> list[int]:
    """The Current counts the watch printed, in order."""
    return [int(n) for n in re.findall(rf"^{COLLECTION}: (\d+)/4 Current", out, re.M)]


async def test_watch_follows_a_rollout_to_success_then_status_prints_table_and_timeline(
        tmp_path: Path) -> None:
    # The target is 2.0 before any device speaks: the watch is following (its first
    # line printed) before the fleet starts, whatever the machine's load.
    repo = DesiredRepo(tmp_path / "repo", count=4, target="2.0",
                       rollout={"maxConcurrent": 2})
    async with serving(settings_for(repo, tmp_path / "s.db")) as running:
        port = running.http_port
        watch = await asyncio.create_subprocess_exec(
            *status_args(port, "--watch", "--timeout", "60"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert watch.stdout is not None
        first = (await asyncio.wait_for(watch.stdout.readline(), 30)).decode()
        async with fleet_of(running, specs(4)):
            code, rest = await finish(watch)
        assert code == 0, first + rest
        seen = fractions(first + rest)
        assert seen[0] == 0 and seen[-1] == 4 and seen == sorted(seen), first + rest
        assert rest.rstrip().endswith("rollout succeeded")
        code, table = await fota_status(port)
        assert code == 0 and re.search(rf"^{COLLECTION}\s+collection\s+\S+\s+4\s+4\s",
                                       table, re.M), table
        code, timeline = await fota_status(port, "device", device_id(0))
        assert code == 0 and "state: Current" in timeline
        assert re.search(r"state: .*-> Current", timeline), timeline


async def test_watch_exits_1_within_a_second_of_the_halt_and_2_for_an_unknown_collection(
        tmp_path: Path) -> None:
    # The halt's own `rollout` event wakes the watch: the stream's keepalive (15 s by
    # default) never has to. The watch is following before the fleet starts, so the halt
    # comes after it connected whatever the machine's load.
    repo = DesiredRepo(tmp_path / "repo", count=4, target="2.0",
                       rollout={"maxConcurrent": 1, "failureThreshold": 1})
    async with serving(settings_for(repo, tmp_path / "s.db")) as running:
        ctl, port = running.controller, running.http_port
        watch = await asyncio.create_subprocess_exec(
            *status_args(port, "--watch", COLLECTION, "--timeout", "60"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert watch.stdout is not None
        first = (await asyncio.wait_for(watch.stdout.readline(), 30)).decode()
        async with fleet_of(running, specs(4, faults=frozenset({Fault.INTEGRITY}))):
            code, rest = await finish(watch)
            ended = time.time()
        out = first + rest
        assert code == 1, out
        assert "halted: rollout halted: 1 of 4 devices failed" in out
        assert out.rstrip().endswith("rollout halted")
        [cid] = ctl.desired.collections
        [halt] = [e for e in ctl.store.events_after(0, collection=cid, limit=1000)
                  if e.kind == "rollout"]
        assert halt.device_id == "" and halt.message.startswith("rollout halted: 1 of 4")
        assert ended - halt.at < 3.0, (halt, ended)  # ~0.6 s: gather, then one /status read
        code, out = await fota_status(port, "--watch", "17dh0cf43jfhkk")
        assert code == 2 and "404" in out
