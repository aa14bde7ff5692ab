"""`GitSource`: the desired state the controller follows, read from git commits.

`sync()` fetches (for a URL), resolves the followed branch and, for a commit not seen
before, loads it from the object database. A valid commit becomes the new `current`
state; an invalid one is never applied: the last good state stays current and the
problems (file:line) go to `status.errors`, as Flux keeps its last artifact. Loading is
incremental through the blob-keyed parse cache under `cache_dir`; a commit's big device
lists are parsed into it by a child process (`parse_worker`), off the server's GIL.
A child that fails (killed, overran) says nothing about the commit: like a failed read
of git, the head is not recorded and the same commit is tried again, after a delay that
doubles from `PARSE_RETRY_FIRST` to at most `PARSE_RETRY_MAX`; /status says "parse: ...".
`poll()` runs `sync` off the event loop and calls `on_status` back whenever the status
changed; `run()` polls, and on a local repository also reacts at once to new commits
through watchfiles.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git

from reconciler.model.desired import DesiredState, FirmwareImage
from reconciler.sources import parse_worker
from reconciler.sources.assemble import Assembler
from reconciler.sources.gitrepo import RepoHandle
from reconciler.sources.image_reader import ImageReader
from reconciler.sources.parsing import ParseCache
from reconciler.sources.problems import Problem
from reconciler.sources.snapshot import CommitSnapshot

log = logging.getLogger(__name__)
# A status is stored and served on every poll: a commit that breaks 100,000 devices keeps
# the first problems and a count, `fota validate` prints them all.
MAX_STATUS_ERRORS = 200
PARSE_RETRY_FIRST = 10.0  # s after a parser child's first failure on a commit
PARSE_RETRY_MAX = 600.0  # s: the longest wait, one child's TIMEOUT
_clock = time.monotonic  # the retry delays' clock (tests move it)


@dataclass(frozen=True)
class SourceStatus:
    url: str
    branch: str | None
    applied_revision: str | None  # last good commit, the one being reconciled
    head_revision: str | None  # newest commit seen
    last_sync: float | None  # epoch seconds of the last successful poll
    errors: tuple[str, ...]  # "file:line: field: message" of head when head is invalid


class GitSource:
    """Follows `branch` of a local repository or URL; see module doc. Without one it
    follows `main`, or for a URL the remote's default branch, resolved on the first poll
    and kept: never the working tree's HEAD, which a checkout would move.
    `cache_dir` holds the parse cache and, for a URL, the mirror clone."""

    def __init__(
        self, repo: str, branch: str | None = None, *, cache_dir: Path,
        interval: float = 10.0, watch: bool = True,
        on_status: Callable[[SourceStatus], None] | None = None,
    ) -> None:
        self.url = repo
        self.branch = branch
        self.interval = interval
        self.watch = watch
        self.cache = ParseCache(cache_dir / "parsed")
        self._handle = RepoHandle(repo, cache_dir)
        self._images = ImageReader(self._handle.open_reader)
        self._assembler = Assembler(self.cache)
        self._lock = threading.Lock()  # gitpython's object readers are not thread-safe
        self._current: DesiredState | None = None
        self._applied: Any = None  # the applied gitpython Commit
        self._head: str | None = None
        self._errors: tuple[str, ...] = ()
        self._git_error: str | None = None
        self._parse_error: str | None = None  # the parser child failed on this head
        self._parse_failures = 0  # in a row, on the commit `_parse_failed_on`
        self._parse_failed_on: str | None = None
        self._parse_retry_at = 0.0  # `_clock` time before which that commit is not tried
        self._last_sync: float | None = None
        self._good_keys: set[tuple[str, str]] = set()
        self._on_status = on_status  # called on the event loop when `status` changed
        self._told: SourceStatus | None = None
        self.watching = asyncio.Event()  # set once `run`'s watcher sees the git directory

    @property
    def current(self) -> DesiredState | None:
        return self._current

    @property
    def status(self) -> SourceStatus:
        errors = self._errors + tuple(e for e in (self._parse_error, self._git_error) if e)
        applied = self._applied.hexsha if self._applied is not None else None
        return SourceStatus(self.url, self.branch, applied, self._head, self._last_sync, errors)

    @property
    def git_error(self) -> str | None:
        """Why the last poll could not read the repository ("git: ..."), if it could not."""
        return self._git_error

    def sync(self) -> DesiredState | None:
        """Poll once; the new state when a new good revision was applied, else None.
        Never raises: whatever stops a poll (gitdb's BadName for a branch that is gone as
        much as a network error) is recorded as `git_error` and shows in `status`, so the
        operator sees it and the next poll tries again."""
        with self._lock:
            try:
                return self._sync()
            except Exception as exc:
                self._git_error = f"git: {_one_line(exc)}"
                expected = isinstance(exc, git.GitError | ValueError | OSError)
                log.warning("git source %s: %s", self.url, self._git_error,
                            exc_info=not expected)  # anything else may be our bug
                return None

    def _sync(self) -> DesiredState | None:
        self._handle.update()
        if self.branch is None:  # resolved once: a later change of HEAD changes nothing
            self.branch = self._handle.default_branch()
        commit = self._handle.head(self.branch)
        self._git_error = None
        self._last_sync = time.time()
        if commit.hexsha == self._head:
            self._parse_error = None  # a head moved back to an applied or known commit
            return None
        if commit.hexsha == self._parse_failed_on and _clock() < self._parse_retry_at:
            return None  # the parser child failed on it: wait before the next child
        try:
            return self._load(commit)
        except parse_worker.ParseFailed as exc:
            self._parse_failed(commit.hexsha, exc)
            return None

    def _parse_failed(self, head: str, exc: parse_worker.ParseFailed) -> None:
        """The parser child failed on the branch head: keep the last good revision, do
        not record the head, try it again after a growing delay."""
        if head != self._parse_failed_on:
            self._parse_failed_on, self._parse_failures = head, 0
        self._parse_failures += 1
        delay = min(PARSE_RETRY_FIRST * 2 ** (self._parse_failures - 1), PARSE_RETRY_MAX)
        self._parse_retry_at = _clock() + delay
        self._parse_error = (f"parse: revision {head[:12]}: {_one_line(exc)}; kept the last "
                             f"good revision, trying again in {delay:g} s")
        log.warning("git source %s: %s", self.url, self._parse_error)

    def _load(self, commit: Any) -> DesiredState | None:
        try:
            state, problems = self._assembled(CommitSnapshot(commit))
        except Exception:
            # Reading the commit failed (not its content): try it again next poll.
            self.cache.end_round()
            raise
        self._head = commit.hexsha
        self._parse_error, self._parse_failed_on = None, None
        keys = self.cache.end_round()
        if state is None:
            self._errors = _capped([str(p) for p in problems])
            self.cache.retain(self._good_keys | keys)
            kept = self._applied.hexsha[:12] if self._applied is not None else "none"
            log.warning("revision %s is invalid, keeping %s: %s", commit.hexsha[:12], kept,
                        "; ".join(self._errors[:3]))
            return None
        self._errors = ()
        self._good_keys = keys
        self.cache.retain(keys)
        self.cache.prune_disk(keys, tmp_after=parse_worker.TIMEOUT)
        self._current, self._applied = state, commit
        return state

    def _assembled(self, snap: CommitSnapshot) -> tuple[DesiredState | None, list[Problem]]:
        """The commit's state, its big unparsed device lists parsed in a child process
        first (`parse_worker`: raises ParseFailed when the child failed)."""
        git_dir = Path(self._handle.open().git_dir)
        parse_worker.prefetch(self.cache, git_dir, snap.manifest_files())
        return self._assembler.load(snap)

    def image_bytes(self, image: FirmwareImage) -> bytes:
        """The image's binary as committed in the applied revision (sha256 checked);
        raises FileNotFoundError when there is none."""
        applied = self._applied
        if applied is None:
            raise FileNotFoundError("no revision has been applied yet")
        try:
            return self._images.read(applied.hexsha, image)
        except FileNotFoundError:
            raise
        except (git.GitError, ValueError, OSError) as exc:
            raise FileNotFoundError(f"{image.path}: {_one_line(exc)}") from exc

    async def image(self, image_id: str) -> bytes:
        """The bytes of image `image_id` of the current state, read off the event loop
        (`ImageReader` keeps the last few in memory); FileNotFoundError when there is
        no such image or file."""
        current = self._current
        image = current.images.get(image_id) if current is not None else None
        if image is None:
            raise FileNotFoundError(f"no image {image_id} in the applied revision")
        return await asyncio.to_thread(self.image_bytes, image)

    async def run(
        self, on_desired: Callable[[DesiredState], Awaitable[None]], stop: asyncio.Event
    ) -> None:
        """Poll every `interval` until `stop` is set; on a local repository a new commit
        wakes the loop at once. `on_desired` gets each newly applied state."""
        poke = asyncio.Event()
        watcher = asyncio.create_task(self._watch(poke, stop)) if self.watch else None
        try:
            while not stop.is_set():
                poke.clear()
                await self.poll(on_desired)
                await _first_of(stop, poke, self.interval)
        finally:
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
            parse_worker.kill_running()  # a poll's child would hold the lock `_close` takes
            await asyncio.to_thread(self._close)

    async def poll(
        self, on_desired: Callable[[DesiredState], Awaitable[None]] | None = None,
    ) -> DesiredState | None:
        """`sync` in a worker thread; a new state goes to `on_desired` first, then a
        changed status to the constructor's `on_status`, both on the caller's loop (so
        whoever stores them needs no lock). Returns the new state, if any."""
        desired = await asyncio.to_thread(self.sync)
        if desired is not None and on_desired is not None:
            await on_desired(desired)
        self._tell_status()
        return desired

    async def start_from(self, revision: str) -> DesiredState | None:
        """Apply `revision`, a commit in the object database (the last good one a state
        file recorded), when the branch head is invalid and nothing is applied yet: the
        head keeps its errors in `status` and is applied once a good commit follows it.
        None when that commit cannot be read or is not valid either."""
        desired = await asyncio.to_thread(self._start_from, revision)
        self._tell_status()
        return desired

    def _start_from(self, revision: str) -> DesiredState | None:
        with self._lock:
            if self._current is not None:
                return None
            try:
                commit = self._handle.open().commit(revision)
                state, _ = self._assembled(CommitSnapshot(commit))
            except Exception as exc:
                log.warning("git source %s: cannot read revision %s: %s", self.url,
                            revision[:12], _one_line(exc))
                state = None
            keys = self.cache.end_round()
            if state is None:
                self.cache.retain(self._good_keys | keys)
                return None
            self._good_keys = keys
            self.cache.retain(keys)
            self._current, self._applied = state, commit
            return state

    def _tell_status(self) -> None:
        status = self.status
        if self._on_status is not None and status != self._told:
            self._told = status
            self._on_status(status)

    async def _watch(self, poke: asyncio.Event, stop: asyncio.Event) -> None:
        import watchfiles  # only a local development setup pays for it

        git_dir = await asyncio.to_thread(self._git_dir)
        if git_dir is None:
            return
        # Commits change refs and objects under the git directory; working-tree edits are
        # not desired state until committed, so only the git directory is watched. awatch
        # sets the event it is given when cancelled, so it gets its own, not `stop`.
        noisy = logging.getLogger("watchfiles.main")
        if noisy.level == logging.NOTSET:  # it logs every batch of changes at INFO
            noisy.setLevel(logging.WARNING)
        done = asyncio.Event()
        changes = watchfiles.awatch(git_dir, stop_event=done, watch_filter=None,
                                    debounce=200, step=50)
        waiting = asyncio.ensure_future(anext(changes))
        try:
            await asyncio.sleep(0)  # the generator's first step registers its watches
            if not waiting.done():
                self.watching.set()
            while not stop.is_set():
                await waiting
                poke.set()
                waiting = asyncio.ensure_future(anext(changes))
        except StopAsyncIteration:
            pass
        except Exception as exc:  # e.g. the inotify watch limit: polling still works
            log.warning("cannot watch %s (%s); polling every %ss", git_dir, exc, self.interval)
        finally:
            done.set()
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
            await changes.aclose()

    def _git_dir(self) -> Path | None:
        with self._lock:
            try:
                return self._handle.local_git_dir
            except (git.GitError, OSError):
                return None

    def _close(self) -> None:
        with self._lock:
            self._handle.close()
        self._images.close()


async def _first_of(stop: asyncio.Event, poke: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(poke.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiters:
            task.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


def _capped(errors: list[str]) -> tuple[str, ...]:
    if len(errors) <= MAX_STATUS_ERRORS:
        return tuple(errors)
    more = len(errors) - MAX_STATUS_ERRORS
    return (*errors[:MAX_STATUS_ERRORS], f"... and {more} more problems (run fota validate)")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500]
