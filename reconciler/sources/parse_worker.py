"""A commit's big device lists parsed in a child process, into the parse cache's files.

Parsing a 200,000-device list is seconds of Python (a JSON decode per line, the schema,
derived ids) making millions of short-lived objects. In the server's process that work
competes with the event loop for the GIL (pauses of 110-260 ms were measured while it
ran beside the store's writers) and its churn stays behind in the server's pymalloc
arenas (RSS far above the start after the devices went away again). So `prefetch`
hands the device lists of a commit that are not in the parse cache yet, once together
at least `CHILD_FROM` bytes, to one child process (`python -m
reconciler.sources.parse_worker`): it reads the blobs from the object database and
writes each one's cache file through the same `ParseCache` code the server uses, and
exits; the server then reads those files in pieces as it does after a restart
(`cachefile`). A manifest's own problems (file, line, field) are inside the cached rows,
exactly as an in-process parse gives them. A smaller commit is parsed in process: a
child's start (~0.6 s of CPU, its imports) would cost more than its parse.

A child that fails, is killed or overruns `TIMEOUT` (an OOM kill, a busy host) says
nothing about the commit: `prefetch` raises `ParseFailed`, the caller keeps the last good
revision running and tries the same commit again later, as after a failed read of git.
The child runs in its own session (a Ctrl-C or SIGHUP to the server's terminal group
does not reach it; the server kills it on timeout and on stop, `kill_running`), from
the cache directory with `-P` (no code from the server's working directory runs in it).
Its `git cat-file` helpers (gitpython's GitCmdObjectDB) outlive a SIGKILLed child: the
server kills and reaps what is left of a failed child's session (`_end_group`); the
pure-Python GitDB reads as fast (0.09-0.18 s against 0.08 s for two 11 MB device lists)
but GitPython deprecates it, with a DeprecationWarning.
Called by `reconciler.sources.git_source` in its worker thread, under its lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from reconciler.sources.parsing import MAX_MANIFEST_BYTES, ParseCache
from reconciler.sources.snapshot import FileEntry

# Bytes of unparsed device lists from which a child parses them: 15,000 devices with
# tags to 35,000 bare ones, whose parse in process (0.3-0.6 s of CPU, measured) costs
# about what a child's start and imports do (~0.65 s of CPU).
CHILD_FROM = 1 << 20
TIMEOUT = 600.0  # s for one child: 200,000 devices take ~5 s
_KIND = "devices"
REAP_WITHIN = 5.0  # s to reap a dead child's SIGKILLed helpers handed to us
WRITE_FAILED = 3  # the child's exit status when it could not write a parse to the cache
log = logging.getLogger(__name__)
_running: set[subprocess.Popen[bytes]] = set()  # children of this process, for `kill_running`
_running_lock = threading.Lock()
_WRITE_FAILURE = "the parser process could not write"


class ParseFailed(Exception):
    """The parser child failed for a reason of its own (killed, overran, could not
    start): the commit is not known to be bad, so it is tried again later."""


def prefetch(cache: ParseCache, git_dir: Path, files: Sequence[FileEntry]) -> None:
    """Parse the big unparsed device lists among `files` in a child, into `cache`'s
    directory (a list the child could not write, on a full disk, is parsed in process).
    Raises ParseFailed when the child failed."""
    todo = [entry for entry in files if _wanted(cache, entry)]
    if cache.directory is None or sum(entry.size for entry in todo) < CHILD_FROM:
        return
    failure = _run(cache.directory, git_dir, [entry.key for entry in todo])
    more = f" and {len(todo) - 1} more" if len(todo) > 1 else ""
    if failure is not None and not failure.startswith(_WRITE_FAILURE):
        raise ParseFailed(f"{failure} ({todo[0].path}{more} not parsed)")
    missing = [entry for entry in todo if not cache.has(_KIND, entry.key)]
    if failure is not None or missing:  # once per revision: this runs once for each
        log.warning("the parser process left %s%s unparsed in %s (%s): parsing in process, "
                    "which costs the event loop pauses and memory the child saves",
                    todo[0].path, more, cache.directory, failure or "no file written")


def _wanted(cache: ParseCache, entry: FileEntry) -> bool:
    parts = entry.path.split("/")
    device_list = len(parts) >= 4 and parts[2] == "devices" and parts[-1].endswith(
        (".yaml", ".yml"))
    return (device_list and not entry.symlink and entry.size <= MAX_MANIFEST_BYTES
            and not cache.has(_KIND, entry.key))


def _command() -> list[str]:
    # -P: `-m` would put the working directory first on sys.path, and run whatever
    # reconciler/ package is found there.
    return [sys.executable, "-P", "-m", "reconciler.sources.parse_worker"]


def _run(cache_dir: Path, git_dir: Path, keys: list[str]) -> str | None:
    """Run the child on `keys`; None when it finished, else what went wrong."""
    request = "\n".join([str(cache_dir), str(git_dir), str(os.getpid()), *keys]) + "\n"
    # Files, not pipes: a helper the child started and left behind would hold a pipe
    # open, and reading it to its end would wait for that helper, not for the child.
    with tempfile.TemporaryFile() as given, tempfile.TemporaryFile() as said:
        given.write(request.encode())
        given.seek(0)
        try:
            child = subprocess.Popen(_command(), stdin=given, stdout=subprocess.DEVNULL,
                                     stderr=said, cwd=cache_dir, start_new_session=True)
        except OSError as exc:
            return f"the parser process could not start: {exc}"
        overran = _wait(child)
        if child.returncode == 0:
            return None
        _end_group(child.pid)  # the git helpers of a child that died (or we killed)
        said.seek(max(0, said.tell() - 4096))  # the end says why; a flood is not read
        stderr = said.read()
    if overran:
        return f"the parser process did not finish within {TIMEOUT:g} s"
    if child.returncode == WRITE_FAILED:
        return f"{_WRITE_FAILURE}: {_last_line(stderr)}"
    if child.returncode < 0:
        return f"the parser process was killed by {_signal_name(-child.returncode)}"
    return f"the parser process failed (exit status {child.returncode}): {_last_line(stderr)}"


def _wait(child: subprocess.Popen[bytes]) -> bool:
    """Wait for the child, killed after TIMEOUT; whether it overran."""
    with _running_lock:
        _running.add(child)
    try:
        child.wait(timeout=TIMEOUT)
        return False
    except subprocess.TimeoutExpired:
        _kill(child)
        child.wait()
        return True
    finally:
        with _running_lock:
            _running.discard(child)


def _last_line(stderr: bytes) -> str:
    said = stderr.decode("utf-8", "replace").strip().splitlines()
    return said[-1][:300] if said else "nothing on stderr"


def kill_running() -> None:
    """Kill the parser children still running (the server stops): in their own session
    they get no signal of the terminal's, and a stopping server reads no more files."""
    with _running_lock:
        children = list(_running)
    for child in children:
        _kill(child)


def _kill(child: subprocess.Popen[bytes]) -> None:
    # The whole group: whatever the child started (git helpers) goes with it.
    if child.returncode is not None:
        return  # reaped: its pid may be another process's now
    with contextlib.suppress(ProcessLookupError, PermissionError):  # gone already
        os.killpg(child.pid, signal.SIGKILL)


def _end_group(pgid: int) -> None:
    """Kill what is left of a dead child's session (its `git cat-file` helpers, which
    outlive a SIGKILLed child) and reap whatever of it was handed to us: as PID 1 of a
    container, or a subreaper, orphans become our children. While one of them lives
    the pgid cannot name another group; none left is ProcessLookupError."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return  # nothing left (or not ours to kill, nor to wait for)
    deadline = time.monotonic() + REAP_WITHIN  # a process in an uninterruptible wait
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-pgid, os.WNOHANG) == (0, 0):
                time.sleep(0.01)  # SIGKILLed: dead within a moment, no event to await
        except ChildProcessError:
            return  # none of them is ours (any more)
    log.warning("processes of the parser's group %d were still alive after %g s",
                pgid, REAP_WITHIN)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # a real-time signal has no name
        return f"signal {number}"


def main() -> int:
    """The child: stdin names the cache directory, the git directory, the server's pid
    and one blob per line; each blob's parse goes to the cache directory."""
    import git  # only the child reads blobs itself

    cache_dir, git_dir, parent, *keys = sys.stdin.read().split("\n")
    cache = ParseCache(Path(cache_dir))
    repo = git.Repo(git_dir)
    try:
        for key in filter(None, keys):
            if os.getppid() != int(parent):
                return 1  # the server is gone: nobody will read these files
            cache.get(_KIND, key, _reader(repo, key))
            if cache.write_error is not None:  # the server must parse it: say why
                print(f"{key}.{_KIND} in {cache_dir}: {cache.write_error}", file=sys.stderr)
                return WRITE_FAILED
            cache.retain(set())  # on disk now; one list at a time in memory
    finally:
        repo.close()
    return 0


def _reader(repo: Any, key: str) -> Callable[[], bytes]:
    def read() -> bytes:
        data: bytes = repo.odb.stream(bytes.fromhex(key)).read()
        return data

    return read


if __name__ == "__main__":
    sys.exit(main())
