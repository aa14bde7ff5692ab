"""`fota serve` refuses to expose the API beyond loopback when no token is configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli import main


def test_serve_refuses_a_public_http_bind_without_a_token(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state.db"
    code = main(["serve", "--http", "0.0.0.0:18080", "--state", str(state)])
    assert code == 2
    err = capsys.readouterr().err
    assert "refusing to serve the API on 0.0.0.0" in err
    assert "--token" in err
    assert not state.exists()  # refused before anything was opened
