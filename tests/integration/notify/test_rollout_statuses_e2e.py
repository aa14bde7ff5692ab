"""End to end: `fota serve` (run_service) on a git repository declaring a GitHub provider
and a signed webhook in manifests/notifications.yaml, a simulated fleet, and fake
receivers on loopback. The commit that changes the target gets `pending` and then
`success` with the fleet's count; every webhook body carries a valid signature."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import httpx
import pytest
from controller_harness import (
    COLLECTION,
    DesiredRepo,
    all_in,
    fleet_of,
    serving,
    settings_for,
    specs,
    until,
)
from receivers import Receiver

from reconciler.model.status import UpdateState

KEY = "e2e-hmac-key"


def notifications_yaml(github: str, hook: str) -> str:
    return f"""\
providers:
- name: github
  type: github
  address: {github}
  repository: acme/fleet
  tokenFrom: {{env: E2E_GITHUB_TOKEN}}
- name: ops
  type: webhook
  address: {hook}/events
  secretFrom: {{env: E2E_HOOK_KEY}}
alerts:
- name: rollouts
  provider: github
- name: everything
  provider: ops
"""


def statuses(github: Receiver, sha: str) -> list[tuple[str, str]]:
    return [(r.json()["state"], r.json()["description"]) for r in github.answered
            if r.path == f"/repos/acme/fleet/statuses/{sha}"]


async def test_a_target_commit_gets_pending_then_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2E_GITHUB_TOKEN", "gh-e2e-token")
    monkeypatch.setenv("E2E_HOOK_KEY", KEY)
    github, hook = Receiver(), Receiver()
    await github.start()
    await hook.start()
    try:
        repo = DesiredRepo(tmp_path / "repo", count=3)
        (repo.root / "manifests/notifications.yaml").write_text(
            notifications_yaml(github.url, hook.url))
        first = repo.commit("notifications")
        async with serving(settings_for(repo, tmp_path / "state.db")) as running, \
                fleet_of(running, specs(3)) as fleet:
            ctl = running.controller
            await until(ctl, all_in(ctl, UpdateState.CURRENT))
            await github.wait_for(lambda: ("success", "fota: 3/3 Current")
                                  in statuses(github, first))
            sha = repo.set_target("2.0")
            await fleet.wait_all(lambda d: d.version == "2.0", timeout=30)
            await github.wait_for(lambda: ("success", "fota: 3/3 Current")
                                  in statuses(github, sha), timeout=30)
            async with httpx.AsyncClient() as client:
                answer = await client.get(f"http://127.0.0.1:{running.http_port}/status")
        # /status shows each provider's counters as last saved (at most 10 s old).
        counters = answer.json()["notifications"]
        assert set(counters) == {"github", "ops"}
        assert counters["ops"]["sent"] >= 1 and counters["github"]["dropped"] == 0
        posted = statuses(github, sha)
        assert posted[0][0] == "pending" and posted[-1] == ("success", "fota: 3/3 Current")
        assert [s for s, _ in posted].count("success") == 1  # never the same status twice
        assert len(posted) == len(set(posted))
        assert {r.json()["context"] for r in github.answered} == {f"fota/{COLLECTION}"}
        assert {r.headers["authorization"] for r in github.answered} == {"Bearer gh-e2e-token"}
        # The webhook heard the rollout of the new revision, every body signed.
        assert any(r.json()["kind"] == "target" and r.json()["revision"] == sha
                   for r in hook.answered)
        for r in hook.requests:
            expected = hmac.new(KEY.encode(), r.body, hashlib.sha256).hexdigest()
            assert r.headers["x-fota-signature"] == f"sha256={expected}"
    finally:
        await github.stop()
        await hook.stop()
