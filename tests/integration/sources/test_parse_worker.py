"""Big device lists parsed in a real child process (`sources.parse_worker`) against real
git repositories: the same state and the same problems as an in-process parse, and a
child that dies or overruns costs its revision, never the source."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.sources import GitSource, parse_worker

BIG = "manifests/fleet/devices/big.yaml"


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
def test_a_child_that_dies_or_overruns_costs_its_revision_not_the_source(
        repo, tmp_path, monkeypatch, command: str, timeout: float, said: str,
        then_a_good_child: bool) -> None:
    src = _source(repo, tmp_path)
    good = src.sync()
    assert good is not None
    monkeypatch.setattr(parse_worker, "_command", lambda: [sys.executable, "-c", command])
    monkeypatch.setattr(parse_worker, "TIMEOUT", timeout)
    repo.write(BIG, _devices(50))
    head = repo.commit("50 devices")
    assert src.sync() is None and src.current is good
    status = src.status
    assert status.applied_revision == good.revision and status.head_revision == head
    assert status.errors == (f"{BIG}:1: not parsed: {said}; kept the last good revision, "
                             "a later commit or a restart tries again",)
    if not then_a_good_child:  # one real child's start (~0.7 s) is enough for the suite
        return
    monkeypatch.undo()  # the real child, for any size
    monkeypatch.setattr(parse_worker, "CHILD_FROM", 1)
    repo.write("manifests/fleet/devices/more.yaml", _devices(1).replace("00000", "99999"))
    repo.commit("one more device")
    state = src.sync()
    assert state is not None and len(state.devices) == 2 + 50 + 1
