"""A restart with an invalid branch head: `fota serve` (a real subprocess) starts on the
last good revision its state file recorded, serves, and says it is degraded."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from controller_harness import DesiredRepo
from serve_process import fota_serve, free_tcp_port, free_udp_port

pytestmark = pytest.mark.slow


def _get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read())


async def test_a_broken_head_at_start_serves_the_last_good_revision(tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    good = repo.repo.head.commit.hexsha
    state, coap, http = tmp_path / "s.db", free_udp_port(), free_tcp_port()
    async with fota_serve(repo.root, state, coap, http_port=http) as first:
        first.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(first.wait(), 20) == 0
    bad = repo.set_target("9.9")  # no such image: the head is invalid
    async with fota_serve(repo.root, state, coap, http_port=http):
        ready = await asyncio.to_thread(_get, http, "/readyz")
        assert ready == {"status": "degraded", "appliedRevision": good,
                         "degraded": f"degraded: head {bad[:12]} invalid, running {good[:12]}"}
        source = (await asyncio.to_thread(_get, http, "/status"))["source"]
        assert (source["appliedRevision"], source["headRevision"]) == (good, bad)
        assert any("9.9" in e for e in source["errors"]), source["errors"]
        fixed = repo.set_target("2.0")
        async with asyncio.timeout(15):  # the child applies it at its next poll
            while (ready := await asyncio.to_thread(_get, http, "/readyz"))["status"] != "ready":
                await asyncio.sleep(0.1)
        assert ready == {"status": "ready", "appliedRevision": fixed}
