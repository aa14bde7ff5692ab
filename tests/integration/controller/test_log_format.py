"""`fota serve --log-format json` as a real subprocess: during a small rollout every
stderr line is one JSON object, and the lines about a device carry its id, endpoint,
collection and the revision being applied (what a log shipper indexes by)."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest
from controller_harness import COLLECTION, SIM_TIMING, DesiredRepo, device_id, endpoint, specs
from serve_process import fota_serve, free_udp_port

from reconciler.simulator import Fleet

pytestmark = pytest.mark.slow


async def test_json_logs_are_one_object_per_line_with_the_device_fields(
        tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=2)
    state, port = tmp_path / "s.db", free_udp_port()
    fleet = Fleet(f"coap://127.0.0.1:{port}", specs(2), timing=SIM_TIMING)
    try:
        async with fota_serve(repo.root, state, port, env={"FOTA_LOG_FORMAT": "json"}) as proc:
            await fleet.start(wait_registered=True, timeout=20)
            head = repo.set_target("2.0")
            await fleet.wait_all(lambda d: d.version == "2.0", timeout=30)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        await fleet.stop(deregister=False)  # the server is gone: De-registering only waits out
        # Timing.deregister_timeout (3 s) for nothing
    lines = (tmp_path / "serve.log").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line, or this raises
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any("fota serve ready" in r["message"] for r in records)
    about = {(r.get("device"), r.get("endpoint"), r.get("collection"), r.get("revision"))
             for r in records if r.get("revision") == head and "device" in r}
    assert {(device_id(n), endpoint(n), COLLECTION, head) for n in range(2)} <= about, about


async def test_the_default_log_format_stays_human(tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    async with fota_serve(repo.root, tmp_path / "s.db", free_udp_port()) as proc:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    first = (tmp_path / "serve.log").read_text().splitlines()[0]
    assert " INFO reconciler." in first and not first.startswith("{")
