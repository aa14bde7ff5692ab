"""`fota serve` (a real subprocess) follows one named branch: `main` unless told, never
the working tree's HEAD, and its status says which branch and revision it applied."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from controller_harness import DesiredRepo
from serve_process import fota_serve, free_udp_port

from reconciler.store import open_reader

pytestmark = pytest.mark.slow


async def _status_after(state: Path, moment: float) -> dict[str, object]:
    """The source status the child process stores, once it polled after `moment`."""
    reader = open_reader(state)
    try:
        async with asyncio.timeout(15):
            while True:
                status = reader.source_status()
                last = status.get("last_sync")
                if isinstance(last, float) and last > moment:
                    return status
                await asyncio.sleep(0.05)
    finally:
        reader.close()


async def test_a_checkout_and_commit_on_another_branch_changes_nothing(tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    main = repo.repo.head.commit.hexsha
    state = tmp_path / "s.db"
    async with fota_serve(repo.root, state, free_udp_port()):
        repo.repo.git.checkout("-b", "pr/x")
        repo.set_target("2.0")  # committed on pr/x, the checked-out branch
        status = await _status_after(state, time.time())
        assert (status["branch"], status["applied_revision"], status["head_revision"]) == (
            "main", main, main)
        repo.repo.git.checkout("main")
        merged = repo.set_target("3.0")
        status = await _status_after(state, time.time())
        assert (status["branch"], status["applied_revision"]) == ("main", merged)
