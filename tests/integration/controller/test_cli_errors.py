"""`fota serve` and `fota plan` given a bad setting: one clear line and exit 2, never a
traceback; a followed branch that disappears at runtime is a source error in the status.

Real git repositories in tmp_path, real SQLite files, the real command-line entry point."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path

import pytest
from builders.ports import free_tcp_port
from controller_harness import DesiredRepo, serving, settings_for

from reconciler.cli import main
from reconciler.store import SqliteReader, open_reader, open_store


def _serve(repo: Path, state: Path, *extra: str) -> list[str]:
    return ["serve", "--repo", str(repo), "--state", str(state), "--coap", "127.0.0.1:0",
            "--http", "127.0.0.1:0", *extra]


def _newer_state_file(state: Path) -> Path:
    """A state file whose schema version (99) is newer than this release's."""
    with sqlite3.connect(state) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    return state


def _one_line(err: str, prefix: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_serve_on_a_branch_that_does_not_exist_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    state = tmp_path / "fota" / "s.db"
    assert main(_serve(repo.root, state, "--branch", "nosuch")) == 2
    line = _one_line(capsys.readouterr().err, "fota serve: ")
    assert "cannot read branch 'nosuch'" in line and "nosuch" in line
    assert not state.parent.exists()  # a failed start leaves no state behind


def test_serve_on_a_repository_path_that_does_not_exist_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_serve(tmp_path / "nowhere", tmp_path / "s.db")) == 2
    line = _one_line(capsys.readouterr().err, "fota serve: ")
    assert line == (f"fota serve: no repository at {tmp_path / 'nowhere'}: the path does "
                    "not exist or is not a directory (--repo or FOTA_REPO)")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no state file, no cache


def test_serve_with_an_unusable_state_file_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    assert main(_serve(repo.root, Path("/proc/x.db"))) == 2
    assert "cannot use state file /proc/x.db" in _one_line(capsys.readouterr().err,
                                                            "fota serve: ")


def test_serve_on_a_database_it_cannot_reach_says_so_without_its_password(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    port = free_tcp_port()  # a port nothing listens on (no port-0 server can take it)
    url = f"postgresql://fota:secret@127.0.0.1:{port}/fota"
    assert main(["serve", "--repo", str(repo.root), "--state", url, "--coap",
                 "127.0.0.1:0", "--http", "127.0.0.1:0"]) == 2
    line = _one_line(capsys.readouterr().err, "fota serve: ")
    assert line.startswith("fota serve: cannot use the database: cannot connect to "
                           "postgresql database fota on 127.0.0.1: "), line
    assert "secret" not in line


def test_serve_with_a_state_file_from_a_newer_release_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    state = _newer_state_file(tmp_path / "s.db")
    assert main(_serve(repo.root, state)) == 2
    line = _one_line(capsys.readouterr().err, "fota serve: ")
    assert line.startswith(f"fota serve: cannot use state file {state}: ")
    assert "schema version 99 is newer" in line


def test_serve_with_a_state_file_that_is_not_a_database_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    state = tmp_path / "s.db"
    state.write_bytes(b"not sqlite " * 64)
    assert main(_serve(repo.root, state)) == 2
    line = _one_line(capsys.readouterr().err, "fota serve: ")
    assert line == f"fota serve: cannot use state file {state}: file is not a database"


def test_serve_on_a_busy_coap_port_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind(("127.0.0.1", 0))
        port = other.getsockname()[1]
        args = _serve(repo.root, tmp_path / "s.db")
        args[args.index("127.0.0.1:0")] = f"127.0.0.1:{port}"  # the --coap value
        assert main(args) == 2
    line = _one_line(capsys.readouterr().err, "fota serve: ")
    assert line.startswith(f"fota serve: cannot serve LwM2M on 127.0.0.1:{port}: ")
    assert "already in use" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # s.db and cache removed


def test_a_second_serve_on_the_same_state_file_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    holder = open_store(tmp_path / "s.db")
    try:
        assert main(_serve(repo.root, tmp_path / "s.db")) == 2
    finally:
        holder.close()
    assert "in use by another fota process" in _one_line(capsys.readouterr().err,
                                                          "fota serve: ")


def test_serve_with_a_malformed_environment_setting_names_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOTA_POLL_SOURCE", "abc")
    assert main(_serve(tmp_path, tmp_path / "s.db")) == 2
    assert _one_line(capsys.readouterr().err, "fota serve: ") == (
        "fota serve: invalid poll_source (from FOTA_POLL_SOURCE): Input should be a valid "
        "number, unable to parse string as a number, got 'abc'")


def test_plan_against_a_file_that_is_not_a_state_file_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    other = tmp_path / "passwd"
    other.write_text("root:x:0:0:root:/root:/bin/bash\n")
    assert main(["plan", "--repo", str(repo.root), "--against", str(other)]) == 2
    captured = capsys.readouterr()
    assert _one_line(captured.err, "fota plan: ") == (
        f"fota plan: {other} is not a fota state file (file is not a database)")
    assert captured.out == ""


def test_plan_against_a_state_file_from_a_newer_release_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    state = _newer_state_file(tmp_path / "s.db")
    assert main(["plan", "--repo", str(repo.root), "--against", str(state)]) == 2
    captured = capsys.readouterr()
    line = _one_line(captured.err, "fota plan: ")
    assert line.startswith(f"fota plan: {state} is not a fota state file (")
    assert "schema version 99" in line and captured.out == ""


async def test_a_followed_branch_deleted_at_runtime_is_a_source_error(tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    repo.repo.create_head("fleet")
    state = tmp_path / "s.db"
    async with serving(settings_for(repo, state, branch="fleet")) as running:
        repo.repo.delete_head("fleet", force=True)
        reader = open_reader(state)
        try:
            async with asyncio.timeout(15):
                # written by the source's status callback at its next poll; the store offers
                # no event to await
                while not any("fleet" in str(e) for e in _errors(reader)):
                    await asyncio.sleep(0.1)
        finally:
            reader.close()
        assert running.controller.desired.revision  # still reconciling the last good one


def _errors(reader: SqliteReader) -> list[object]:
    errors = reader.source_status().get("errors")
    return list(errors) if isinstance(errors, list) else []
