"""`SideThread`: a periodic blocking call (a heartbeat, a leadership check) on a thread of
its own, one call at a time, bounded by a timeout.

Why not `asyncio.to_thread`: a call that outlives its timeout keeps running in the
default executor, so a database that stops answering made each period leave one more
thread blocked until the shared pool (the apply, the offer lookups of firmware
downloads) had none left; and the cleanup that followed the timeout (closing the
session) ran beside the call still using that session. Here a call still running when
the next is asked makes the next one fail at once (the caller counts it as a miss: its
lease runs out meanwhile), and work queued after it (`later`) runs on the same thread
once it returns, never beside it. The thread is a daemon: a call that never returns
does not hold the process's exit (a pool's worker is joined at exit), so SIGTERM stops
`fota serve` within its bounds even with the database gone. Used by
`cluster.lease.NodeLease` and `store.pg.leader.PgLeadership`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
_Job = tuple[Callable[[], Any], "concurrent.futures.Future[Any]"]


class StillRunning(TimeoutError):
    """The previous call has not returned: this one was not started."""


class SideThread:
    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._running: concurrent.futures.Future[Any] | None = None

    @property
    def busy(self) -> bool:
        return self._running is not None and not self._running.done()

    async def call(self, fn: Callable[[], T], timeout: float) -> T:
        """`fn()` on the side thread, or TimeoutError after `timeout` (the call goes on
        and the thread stays busy until it returns), or StillRunning at once."""
        if self.busy:
            raise StillRunning("the previous call has not returned yet")
        future: concurrent.futures.Future[T] = self._submit(fn)
        self._running = future
        return await asyncio.wait_for(_outlasting(future), timeout)

    def later(self, fn: Callable[[], object]) -> None:
        """`fn()` on the side thread after whatever runs there now; not awaited."""
        self._submit(fn)

    async def close(self, last: Callable[[], object], timeout: float) -> None:
        """Run `last()` after the running call (waiting at most `timeout`), then let the
        thread end; a call that never returns keeps only this (daemon) thread."""
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_outlasting(self._submit(last)), timeout)
        finally:
            self._jobs.put(None)

    def _submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((fn, future))
        if self._thread is None or not self._thread.is_alive():  # first use, or closed
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()
        return future

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller, as a pool would
                future.set_exception(exc)


def _outlasting(future: concurrent.futures.Future[T]) -> Awaitable[T]:
    """`future` for asyncio, shielded: a timeout stops the wait, not the call, and what
    the call ends with later is taken (never an "exception was never retrieved")."""
    wrapped = asyncio.wrap_future(future)
    wrapped.add_done_callback(lambda f: f.cancelled() or f.exception())
    return asyncio.shield(wrapped)
