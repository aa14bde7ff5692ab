"""Only a real `fota serve` command line executes itself again for glibc's malloc
(reconciler/allocator.py): `main([...])`, as tests call it in their own process, never
does, and neither does another command. os.execv is replaced by a recorder here: a real
one would replace the test process."""

from __future__ import annotations

import os
import sys

import pytest

from reconciler import cli


class Executed(Exception):
    """Raised by the recorder instead of replacing the process."""


@pytest.fixture
def execs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    # set, then deleted: the undo removes what the code under test sets
    monkeypatch.setenv("PYTHONMALLOC", "unset-by-the-test")
    monkeypatch.delenv("PYTHONMALLOC")
    calls: list[tuple[str, list[str]]] = []

    def execv(path: str, argv: list[str]) -> None:
        calls.append((path, list(argv)))
        raise Executed

    monkeypatch.setattr(os, "execv", execv)
    return calls


def test_main_with_arguments_never_executes_again(
        execs: list[tuple[str, list[str]]]) -> None:
    assert cli.main(["serve", "--coap", "no-port"]) == 2  # refused before any server starts
    assert execs == [] and "PYTHONMALLOC" not in os.environ


def test_the_command_line_serve_executes_again_with_malloc(
        execs: list[tuple[str, list[str]]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["fota", "validate", "/nonexistent"])
    assert cli.main() == 1  # another command: no exec
    assert execs == []
    monkeypatch.setattr(sys, "argv", ["fota", "serve", "--coap", "no-port"])
    with pytest.raises(Executed):
        cli.main()
    assert execs == [(sys.executable, [sys.executable, *sys.orig_argv[1:]])]
    assert os.environ["PYTHONMALLOC"] == "malloc"
