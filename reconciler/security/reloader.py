"""`CredentialsReloader`: the current credentials of a running `fota serve`.

Holds the last good set read from the credentials file and re-reads the file on SIGHUP
and when it changes (watchfiles on its directory, so an editor's rename and Kubernetes'
`..data` symlink swap count too). A new good set replaces the old one in one assignment
and every subscriber is called with (old, new), on the loop: the DTLS transport revokes
the sessions of identities that left or changed. A bad file changes nothing: the last
good set stays, the error is logged with file:line (at most once a minute unless it
changes) and shown in `status()`, which `serve` stores for /status (never a key).
Content that did not change (a `touch`, a SIGHUP) is not a reload. Built and run by
`reconciler.serve`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from reconciler.security.credentials import (
    Credentials,
    CredentialsError,
    parse_credentials,
    read_credentials_file,
)

log = logging.getLogger("reconciler.security")
LOG_EVERY = 60.0  # seconds between two log lines of the same reload error
MIN_INTERVAL = 0.2  # seconds between two reloads: a file rewritten in a loop is read 5/s
LOGGED_PROBLEMS = 5  # lines of one error in the log; /status has the first one

Subscriber = Callable[[Credentials, Credentials], None]


class CredentialsReloader:
    def __init__(self, path: Path, *,
                 record: Callable[[Mapping[str, object]], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._record, self._clock = record, clock
        self._current = Credentials(source=str(path))
        self._digest: bytes | None = None
        self._subscribers: list[Subscriber] = []
        self._loaded_at: float | None = None
        self._reloads = 0
        self._reason = ""  # what caused the last load: start, SIGHUP, file changed
        self._error: str | None = None
        self._error_at: float | None = None
        self._logged: tuple[str, float] | None = None  # (error, when) of the last log line
        self._unlogged = 0
        # Set once `run` takes SIGHUP and watches the file (tests await it).
        self.watching = asyncio.Event()

    @property
    def current(self) -> Credentials:
        return self._current

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def load(self) -> Credentials:
        """The first read, before serving: raises CredentialsError (no last good set)."""
        data = read_credentials_file(self.path)
        self._swap(parse_credentials(data, str(self.path)), _digest(data), "start")
        return self._current

    async def reload(self, why: str) -> bool:
        """Read the file off the loop; swap when it parsed and differs. True on a swap."""
        try:
            found = await asyncio.to_thread(self._read_changed)
        except CredentialsError as exc:
            self._failed(exc, why)
            return False
        if found is None:
            return False
        self._swap(*found, why)
        return True

    def status(self) -> dict[str, object]:
        return {"path": str(self.path), "count": len(self._current),
                "loaded_at": self._loaded_at, "reloads": self._reloads,
                "reason": self._reason, "error": self._error, "error_at": self._error_at}

    async def run(self, stop: asyncio.Event) -> None:
        """Reload on SIGHUP and on changes of the file until `stop`."""
        wake, reasons = asyncio.Event(), set[str]()

        def poke(why: str) -> None:
            reasons.add(why)
            wake.set()

        unhook = _on_sighup(lambda: poke("SIGHUP"))
        watcher = asyncio.create_task(self._watch(lambda: poke("file changed"), stop),
                                      name="credentials-watch")
        try:
            while await _first(wake, stop):
                wake.clear()
                why = " and ".join(sorted(reasons))
                reasons.clear()
                await self.reload(why)
                await asyncio.sleep(MIN_INTERVAL)
        finally:
            unhook()
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    def _read_changed(self) -> tuple[Credentials, bytes] | None:
        data = read_credentials_file(self.path)
        digest = _digest(data)
        if digest == self._digest:
            return None
        return parse_credentials(data, str(self.path)), digest

    def _swap(self, new: Credentials, digest: bytes, why: str) -> None:
        old, self._current, self._digest = self._current, new, digest
        self._loaded_at, self._error, self._error_at = self._clock(), None, None
        self._reason = why
        self._logged, self._unlogged = None, 0
        if why != "start":
            self._reloads += 1
        log.info("credentials: %d loaded from %s (%s)", len(new), self.path, why)
        self._write()
        for callback in list(self._subscribers):
            try:
                callback(old, new)
            except Exception:  # one subscriber's bug must not keep the others stale
                log.exception("credentials subscriber failed")

    def _failed(self, exc: CredentialsError, why: str) -> None:
        text = str(exc.problems[0]) if exc.problems else str(exc)
        now = self._clock()
        self._error, self._error_at = text, now
        self._write()
        if self._logged is not None and self._logged[0] == text \
                and now - self._logged[1] < LOG_EVERY:
            self._unlogged += 1
            return
        shown = [str(p) for p in exc.problems[:LOGGED_PROBLEMS]]
        more = len(exc.problems) - len(shown)
        log.error("credentials not reloaded (%s), keeping the %d loaded at %s: %s%s%s", why,
                  len(self._current), _when(self._loaded_at), "; ".join(shown),
                  f" (and {more} more problem(s))" if more > 0 else "",
                  f" ({self._unlogged} repeats not logged)" if self._unlogged else "")
        self._logged, self._unlogged = (text, now), 0

    def _write(self) -> None:
        if self._record is not None:
            self._record(self.status())

    async def _watch(self, poke: Callable[[], None], stop: asyncio.Event) -> None:
        import watchfiles

        name = self.path.name
        directory = self.path.parent

        def ours(_: object, changed: str) -> bool:
            # Kubernetes swaps a secret's `..data` symlink; editors write and rename.
            found = Path(changed).name
            return found == name or found.startswith("..")

        noisy = logging.getLogger("watchfiles.main")
        if noisy.level == logging.NOTSET:  # it logs every batch of changes at INFO
            noisy.setLevel(logging.WARNING)
        done = asyncio.Event()  # awatch sets its stop event when cancelled: not `stop`
        changes = watchfiles.awatch(directory, stop_event=done, watch_filter=ours,
                                    debounce=100, step=50, recursive=False)
        waiting = asyncio.ensure_future(anext(changes))
        try:
            await asyncio.sleep(0)  # the generator's first step registers its watch
            self.watching.set()
            while True:
                await waiting
                poke()
                waiting = asyncio.ensure_future(anext(changes))
        except StopAsyncIteration:
            pass
        except (OSError, RuntimeError) as exc:  # a directory gone: SIGHUP still works
            log.warning("credentials: not watching %s (%s); send SIGHUP after a change",
                        directory, exc)
            self.watching.set()
        finally:
            done.set()
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
            await changes.aclose()


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)) if at else "start"


async def _first(wake: asyncio.Event, stop: asyncio.Event) -> bool:
    """Wait for `wake` or `stop`; True when woken and not stopped."""
    if not (wake.is_set() or stop.is_set()):
        waits = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
    return not stop.is_set()


def _on_sighup(handler: Callable[[], None]) -> Callable[[], None]:
    """Install `handler` for SIGHUP on the running loop; the remover. Only the main
    thread can take signals: elsewhere (a test's thread) it is a no-op."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, handler)
    except (RuntimeError, ValueError, NotImplementedError):
        return lambda: None

    def remove() -> None:
        loop.remove_signal_handler(signal.SIGHUP)

    return remove
