"""A real `fota serve` configured only through FOTA_* variables (no flags) honours them."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.request
from pathlib import Path

import pytest
from controller_harness import DesiredRepo
from serve_process import ENV, free_tcp_port, free_udp_port

pytestmark = pytest.mark.slow


def _readyz(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
        body: dict[str, object] = json.loads(response.read())
        return body


async def test_repo_state_and_ports_come_from_the_environment(tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    state, http = tmp_path / "elsewhere" / "state.db", free_tcp_port()
    env = {**os.environ, **ENV, "FOTA_REPO": str(repo.root), "FOTA_STATE": str(state),
           "FOTA_COAP_PORT": str(free_udp_port()), "FOTA_HTTP_PORT": str(http)}
    workdir = tmp_path / "cwd"  # no repository and no .fota here: the defaults would fail
    workdir.mkdir()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler.cli", "serve", cwd=workdir, env=env,
        stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(30):
            while b"fota serve ready" not in (line := await proc.stderr.readline()):
                assert line, "fota serve exited before it was ready"
        assert (await asyncio.to_thread(_readyz, http))["appliedRevision"] == \
            repo.repo.head.commit.hexsha
        assert state.exists() and not (workdir / ".fota").exists()
    finally:
        proc.terminate()
        await proc.communicate()
