"""One `fota serve` per state file, whatever name the second one is given: a symlink or
a hard link to a state file in use is refused before it touches the database."""

from __future__ import annotations

from pathlib import Path

import pytest
from controller_harness import DesiredRepo
from serve_process import fota_serve, free_udp_port, run_to_exit, serve_args

pytestmark = pytest.mark.slow


async def test_a_second_fota_serve_through_a_symlink_or_a_hard_link_refuses_to_start(
        tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    state = tmp_path / "state" / "s.db"
    state.parent.mkdir()
    async with fota_serve(repo.root, state, free_udp_port()):
        (tmp_path / "sym.db").symlink_to(state)
        (tmp_path / "hard.db").hardlink_to(state)
        for other in (tmp_path / "sym.db", tmp_path / "hard.db"):
            code, err = await run_to_exit(serve_args(repo.root, other, free_udp_port()))
            assert code == 2, err
            assert f"cannot use state file {other}" in err
            assert "in use by another fota process" in err
        assert not (tmp_path / "hard.db-wal").exists()  # never a second WAL for one database
        assert not (tmp_path / "sym.db-wal").exists()
