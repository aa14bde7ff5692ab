"""`SideThread`: a periodic blocking call (a heartbeat, a leadership check) on a thread of
its own, one call at a time, bounded by a timeout.

Why not `asyncio.to_thread`: a call that outlives its timeout keeps running in the
default executor, so a database that stops answering made each period leave one more
thread blocked until the shared pool (the apply, the offer lookups of firmware
downloads) had none left; and the cleanup that followed the timeout (closing the
session) ran beside the call still using that session. Here a call still running when
the next is asked makes the next one fail at once (the caller counts it as a miss: its
lease runs out meanwhile), and work queued after it (`later`) runs on the same thread
once it returns, never beside it. Used by `cluster.lease.NodeLease` and
`store.pg.leader.PgLeadership`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class StillRunning(TimeoutError):
    """The previous call has not returned: this one was not started."""


class SideThread:
    def __init__(self, name: str) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=name)
        self._running: concurrent.futures.Future[Any] | None = None

    @property
    def busy(self) -> bool:
        return self._running is not None and not self._running.done()

    async def call(self, fn: Callable[[], T], timeout: float) -> T:
        """`fn()` on the side thread, or TimeoutError after `timeout` (the call goes on
        and the thread stays busy until it returns), or StillRunning at once."""
        if self.busy:
            raise StillRunning("the previous call has not returned yet")
        future = self._pool.submit(fn)
        self._running = future
        return await asyncio.wait_for(_outlasting(future), timeout)

    def later(self, fn: Callable[[], object]) -> None:
        """`fn()` on the side thread after whatever runs there now; not awaited."""
        self._pool.submit(fn)

    async def close(self, last: Callable[[], object], timeout: float) -> None:
        """Run `last()` after the running call (waiting at most `timeout`), then let the
        thread end; a call that never returns keeps only this thread."""
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_outlasting(self._pool.submit(last)), timeout)
        finally:
            self._pool.shutdown(wait=False)


def _outlasting(future: concurrent.futures.Future[T]) -> Awaitable[T]:
    """`future` for asyncio, shielded: a timeout stops the wait, not the call, and what
    the call ends with later is taken (never an "exception was never retrieved")."""
    wrapped = asyncio.wrap_future(future)
    wrapped.add_done_callback(lambda f: f.cancelled() or f.exception())
    return asyncio.shield(wrapped)
