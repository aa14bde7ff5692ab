"""`fota serve` (a real subprocess) refuses a busy HTTP port in one line with exit 2,
before its CoAP server and controller start, and leaves no state file behind."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from controller_harness import DesiredRepo
from serve_process import free_udp_port, run_to_exit, serve_args

pytestmark = pytest.mark.slow


async def test_a_busy_http_port_is_one_line_and_exit_2_before_anything_starts(
        tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    state = tmp_path / "fota" / "state.db"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        code, err = await run_to_exit(serve_args(repo.root, state, free_udp_port(), port))
    lines = err.strip().splitlines()
    assert code == 2 and lines == [
        f"fota serve: cannot serve HTTP on 127.0.0.1:{port}: Address already in use"], err
    assert not state.parent.exists()
