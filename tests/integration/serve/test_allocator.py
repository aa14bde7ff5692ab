"""`fota serve` runs on glibc's malloc by default (reconciler/allocator.py): started
without `PYTHONMALLOC`, the process it started (same PID) has executed itself again with
`PYTHONMALLOC=malloc`; an operator's own `PYTHONMALLOC` is kept. Both say so in their ready line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from controller_harness import DesiredRepo
from serve_process import free_udp_port, serve_args, serve_child

pytestmark = pytest.mark.slow


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(entry.partition("=")[::2] for entry in raw.split("\0") if entry)


async def _started(tmp_path: Path, args: list[str], env: dict[str, str]
                   ) -> tuple[dict[str, str], str, str]:
    """(the environment the running server's PID has, its command line, its log)."""
    async with serve_child(args, tmp_path / "serve.log", env, 30) as (proc, _):
        environ = _environ(proc.pid)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ")
    return environ, cmdline.decode(), (tmp_path / "serve.log").read_text()


async def test_the_console_script_runs_on_malloc_in_the_same_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONMALLOC", raising=False)  # serve_child passes ours on
    repo = DesiredRepo(tmp_path / "repo", count=1)
    fota = str(Path(sys.executable).with_name("fota"))  # the console script, as installed
    args = [fota, *serve_args(repo.root, tmp_path / "s.db", free_udp_port())[3:]]
    environ, cmdline, log = await _started(tmp_path, args, {})
    assert environ.get("PYTHONMALLOC") == "malloc"
    assert f"{fota} serve --repo" in cmdline  # the same command line, executed again
    assert "allocator malloc (PYTHONMALLOC=malloc)" in log  # the ready line


async def test_an_operators_pythonmalloc_is_kept(tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    args = serve_args(repo.root, tmp_path / "s.db", free_udp_port())  # python -m ...
    environ, _, log = await _started(tmp_path, args, {"PYTHONMALLOC": "pymalloc"})
    assert environ.get("PYTHONMALLOC") == "pymalloc"
    assert "allocator pymalloc (PYTHONMALLOC=pymalloc)" in log
