"""The /events limits are `fota serve` settings (as `FOTA_EVENTS_*` variables and the
model's fields): `run_service` on loopback serves its streams with them, beside the task
that keeps the event log bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from controller_harness import DesiredRepo, serving, settings_for


async def test_the_stream_cap_and_keepalive_come_from_the_serve_settings(
        tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=2)
    settings = settings_for(repo, tmp_path / "state.db", events_max_streams=1,
                            events_keepalive=0.2, events_prune_interval=0.05)
    async with serving(settings) as running, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.http_port}",
                              timeout=10) as http:
        async with http.stream("GET", "/events") as first:
            lines = first.aiter_lines()
            async with asyncio.timeout(5):  # a quiet stream: the keepalive, at 0.2 s
                assert await anext(line async for line in lines
                                   if line.startswith(":")) == ": keepalive"
            second = await http.get("/events")
            assert (second.status_code, second.headers["retry-after"]) == (503, "5")
            assert "1 open" in second.json()["message"]
        assert "event-retention" in {t.get_name() for t in asyncio.all_tasks()}
