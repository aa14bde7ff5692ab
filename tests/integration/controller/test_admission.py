"""`fota serve`'s admission hook: only endpoints of the applied desired state register;
the others are refused, logged at a capped rate and counted in /status."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
from controller_harness import DesiredRepo, endpoint, fleet_of, serving, settings_for

from reconciler.serve.admission import Admission
from reconciler.simulator import DeviceSpec
from reconciler.sources import GitSource
from reconciler.store import open_reader


def test_only_endpoints_declared_in_the_applied_revision_are_admitted(tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=2)
    source = GitSource(str(repo.root), repo.repo.active_branch.name,
                       cache_dir=tmp_path / "cache")
    admit = Admission(source)
    assert not admit(endpoint(0))  # nothing applied yet: nobody
    assert source.sync() is not None
    assert admit(endpoint(0)) and admit(endpoint(1))
    assert not admit(endpoint(2)) and not admit("urn:imei:000000000000000")
    repo.count = 1
    repo.commit("device 1 leaves the fleet")
    assert source.sync() is not None
    assert admit(endpoint(0)) and not admit(endpoint(1))


async def test_undeclared_endpoints_are_refused_logged_once_and_counted_in_status(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    state = tmp_path / "s.db"
    strangers = [DeviceSpec(endpoint(n), version="1.0", lifetime=60) for n in (7, 8)]
    caplog.set_level(logging.WARNING, logger="reconciler.admission")
    async with serving(settings_for(repo, state)) as running, fleet_of(running, strangers):
        reader = open_reader(state)
        try:
            async with asyncio.timeout(15):  # another task writes it: nothing to await
                while reader.admission_status().get("undeclared") != 2:
                    await asyncio.sleep(0.05)
        finally:
            reader.close()
        async with httpx.AsyncClient() as client:
            status = (await client.get(f"http://127.0.0.1:{running.http_port}/status")).json()
    admission = status["admission"]
    assert admission["undeclaredEndpoints"] == 2
    assert admission["firstUndeclared"] in (endpoint(7), endpoint(8))
    assert admission["message"] == (f"2 undeclared endpoints tried to register; first: "
                                    f"{admission['firstUndeclared']}")
    refused = [r for r in caplog.records if r.name == "reconciler.admission"]
    assert len(refused) == 1  # two endpoints, retrying: one line per minute at most
    assert "not declared in any collection" in refused[0].getMessage()


def test_refusals_are_logged_at_most_once_a_minute_and_recorded(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    source = GitSource(str(repo.root), "main", cache_dir=tmp_path / "cache")
    assert source.sync() is not None
    now = [0.0]
    recorded: list[dict[str, object]] = []
    admit = Admission(source, lambda s: recorded.append(dict(s)), clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="reconciler.admission")
    for at, who in ((0.0, "urn:a"), (1.0, "urn:b"), (30.0, "urn:a"), (61.0, "urn:c")):
        now[0] = at
        assert not admit(who)
    lines = [r.getMessage() for r in caplog.records if r.name == "reconciler.admission"]
    assert len(lines) == 2 and "'urn:a'" in lines[0]
    assert lines[1].endswith("(2 more refusals not logged)") and "'urn:c'" in lines[1]
    assert recorded[-1] == {"undeclared": 3, "first": "urn:a", "capped": False}
