"""Big device lists parsed in a real child process (`sources.parse_worker`) against real
git repositories: the same state and the same problems as an in-process parse, and a
child that dies or overruns costs neither the source nor the commit: the last good
revision keeps running and the commit is tried again after a growing delay."""

from __future__ import annotations

import ctypes
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.sources import GitSource, git_source, parse_worker, parsing

BIG = "manifests/fleet/devices/big.yaml"
_real_command = parse_worker._command


def _devices(count: int, bad_line: int | None = None) -> str:
    rows = [f'- {{"endpoint": "urn:dev:{n:05d}", "tags": {{"n": "{n}"}}}}' for n in range(count)]
    if bad_line is not None:  # line numbers count the `devices:` header as line 1
        rows[bad_line - 2] = '- {"endpoint": "urn:dev:bad", "retry": "often"}'
    return "devices:\n" + "\n".join(rows) + "\n"


def _source(repo: Any, tmp_path: Path, name: str = "cache") -> GitSource:
    return GitSource(str(repo.root), "main", cache_dir=tmp_path / name)


@pytest.fixture
def child_for_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse_worker, "CHILD_FROM", 1)


@pytest.mark.usefixtures("child_for_any_size")
def test_a_child_parses_the_big_list_and_the_state_is_the_in_process_one(
        repo, tmp_path, monkeypatch) -> None:
    repo.write(BIG, _devices(300))
    repo.commit("300 devices")
    # A reconciler package in the server's working directory is not what the child runs.
    planted = tmp_path / "cwd" / "reconciler" / "sources"
    planted.mkdir(parents=True)
    for package in (planted.parent, planted):
        (package / "__init__.py").write_text("")
    (planted / "parse_worker.py").write_text("raise SystemExit('planted code ran')\n")
    monkeypatch.chdir(planted.parent.parent)
    src = _source(repo, tmp_path)
    state = src.sync()
    assert state is not None and len(state.devices) == 302
    # The source read the child's files: the collection, images and two binaries are
    # parsed in process (the child takes device lists only), the two device lists not.
    assert src.cache.parse_count == 4
    monkeypatch.setattr(parse_worker, "CHILD_FROM", 1 << 40)
    alone = _source(repo, tmp_path, "in-process")
    assert alone.sync() == state and alone.cache.parse_count == 6


def test_a_bad_list_parsed_by_a_child_names_the_same_file_line_and_field(
        repo, tmp_path, monkeypatch) -> None:
    repo.write(BIG, _devices(300, bad_line=123))
    repo.commit("a bad retry on line 123")
    in_process = _source(repo, tmp_path, "in-process")
    assert in_process.sync() is None
    monkeypatch.setattr(parse_worker, "CHILD_FROM", 1)
    src = _source(repo, tmp_path)
    assert src.sync() is None and src.cache.parse_count == 4
    assert src.status.errors == in_process.status.errors
    assert src.status.errors[0].startswith(f"{BIG}:123: devices[121].retry: ")


@pytest.mark.usefixtures("child_for_any_size")
@pytest.mark.parametrize(("command", "timeout", "said", "then_a_good_child"), [
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 60.0,
     "the parser process was killed by SIGKILL", True),
    ("import os, signal; os.kill(os.getpid(), signal.SIGRTMIN + 6)", 60.0,
     f"the parser process was killed by signal {signal.SIGRTMIN + 6}", False),
    ("import sys; sys.exit('no space left')", 60.0,
     "the parser process failed (exit status 1): no space left", False),
    ("import time; time.sleep(30)", 0.3, "the parser process did not finish within 0.3 s",
     False),
])
def test_a_child_that_dies_or_overruns_costs_neither_the_source_nor_the_commit(
        repo, tmp_path, monkeypatch, command: str, timeout: float, said: str,
        then_a_good_child: bool) -> None:
    now = [1000.0]
    monkeypatch.setattr(git_source, "_clock", lambda: now[0])
    src = _source(repo, tmp_path)
    good = src.sync()
    assert good is not None
    runs: list[int] = []

    def failing() -> list[str]:
        runs.append(1)
        return [sys.executable, "-c", command]

    monkeypatch.setattr(parse_worker, "_command", failing)
    monkeypatch.setattr(parse_worker, "TIMEOUT", timeout)
    repo.write(BIG, _devices(50))
    head = repo.commit("50 devices")
    assert src.sync() is None and src.current is good and len(runs) == 1
    status = src.status
    # The head is not recorded: the commit is not known to be bad.
    assert status.applied_revision == good.revision == status.head_revision
    assert status.errors == (f"parse: revision {head[:12]}: {said} ({BIG} not parsed); "
                             "kept the last good revision, trying again in 10 s",)
    if not then_a_good_child:  # one real child's start (~0.7 s) is enough for the suite
        return
    # Tried again once the delay is over, not before; the delay doubles, up to a bound.
    delays: list[float] = []
    for _ in range(8):
        delay = src._parse_retry_at - now[0]
        assert src.sync() is None and len(runs) == len(delays) + 1  # too early
        now[0] += delay
        delays.append(delay)
        assert src.sync() is None and len(runs) == len(delays) + 1
    assert delays == [10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 600.0, 600.0]
    assert src.status.errors[0].endswith("trying again in 600 s")
    monkeypatch.setattr(parse_worker, "_command", _real_command)
    now[0] += git_source.PARSE_RETRY_MAX
    state = src.sync()  # the same commit, now that a child can parse it
    assert state is not None and len(state.devices) == 2 + 50
    assert src.status.head_revision == head and src.status.errors == ()



def test_the_child_has_its_own_session_and_dies_with_what_it_started(
        tmp_path, monkeypatch) -> None:
    # Own session: a Ctrl-C or SIGHUP to the server's terminal group does not reach it.
    alone = "import os, sys; sys.exit(os.getsid(0) != os.getpid())"
    monkeypatch.setattr(parse_worker, "_command", lambda: [sys.executable, "-c", alone])
    assert parse_worker._run(tmp_path, tmp_path, []) is None
    # On timeout the whole group is killed: no helper outlives the child.
    pid_file = tmp_path / "helper.pid"
    starts = ("import subprocess, sys, time; p = subprocess.Popen(['sleep', '60']); "
              f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    monkeypatch.setattr(parse_worker, "_command", lambda: [sys.executable, "-c", starts])
    monkeypatch.setattr(parse_worker, "TIMEOUT", 1.0)
    assert parse_worker._run(tmp_path, tmp_path, []) == (
        "the parser process did not finish within 1 s")
    helper = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(helper):  # SIGKILL is sent; its delivery is the kernel's
        assert time.monotonic() < deadline, "the child's helper outlived it"
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.usefixtures("child_for_any_size")
def test_a_list_the_child_cannot_write_is_parsed_in_process_and_said_once(
        repo, tmp_path, caplog) -> None:
    repo.write(BIG, _devices(300))
    repo.commit("300 devices")
    src = _source(repo, tmp_path)
    big = repo.repo.head.commit.tree[BIG].hexsha
    # A directory where the child's file goes: its rename fails (even for root).
    blocked = tmp_path / "cache" / "parsed" / f"{big}.devices.{parsing._FORMAT}"
    blocked.mkdir(parents=True)
    with caplog.at_level("WARNING", logger="reconciler.sources.parse_worker"):
        state = src.sync()
    assert state is not None and len(state.devices) == 302
    said = [r.getMessage() for r in caplog.records if r.name.endswith("parse_worker")]
    assert len(said) == 1, said
    assert said[0].startswith("the parser process left manifests/fleet/devices/a.yaml "
                              "and 1 more unparsed in ")
    assert f"the parser process could not write: {big}.devices in " in said[0]
    assert "Is a directory" in said[0]


def test_the_helpers_of_a_killed_child_are_killed_and_reaped(tmp_path, monkeypatch) -> None:
    # As PID 1 of a container, orphans become the server's children: a subreaper here.
    libc = ctypes.CDLL(None, use_errno=True)
    pid_file = tmp_path / "helper.pid"
    dies = ("import os, signal, subprocess; p = subprocess.Popen(['sleep', '60']); "
            f"open({str(pid_file)!r}, 'w').write(str(p.pid)); "
            "os.kill(os.getpid(), signal.SIGKILL)")  # as the OOM killer does
    monkeypatch.setattr(parse_worker, "_command", lambda: [sys.executable, "-c", dies])
    assert libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        assert parse_worker._run(tmp_path, tmp_path, []) == (
            "the parser process was killed by SIGKILL")
    finally:
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    assert not Path(f"/proc/{int(pid_file.read_text())}").exists()  # killed and reaped


_PR_SET_CHILD_SUBREAPER = 36
