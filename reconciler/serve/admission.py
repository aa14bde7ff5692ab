"""`Admission`: which endpoints may register with `fota serve`'s LwM2M server.

Only endpoints declared in the applied desired state may register (others get 4.03). The
decision reads the git source's current state, which exists before the LwM2M server and
the controller are built, so the server takes this hook at construction and neither it
nor the controller needs to find the other. Built by `service.run_service`.

Anyone can send a Register, so what a refusal costs is capped: distinct endpoints are
counted up to `MAX_TRACKED`, a log line is written at most every `LOG_EVERY` seconds
(saying how many it left out), and the count reaches the store (/status) at most once
per `WRITE_EVERY` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from reconciler.sources import GitSource

log = logging.getLogger("reconciler.admission")
MAX_TRACKED = 10_000  # distinct undeclared endpoints remembered
LOG_EVERY = 60.0
WRITE_EVERY = 1.0


class Admission:
    def __init__(self, source: GitSource,
                 record: Callable[[Mapping[str, object]], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._source, self._record, self._clock = source, record, clock
        self._seen: set[str] = set()
        self._first: str | None = None
        self._logged_at: float | None = None
        self._unlogged = 0
        self._pending: asyncio.TimerHandle | None = None

    def __call__(self, endpoint: str) -> bool:
        current = self._source.current
        if current is not None and current.device_by_endpoint(endpoint) is not None:
            return True
        self._refused(endpoint)
        return False

    @property
    def undeclared(self) -> int:
        return len(self._seen)

    def _refused(self, endpoint: str) -> None:
        if self._first is None:
            self._first = endpoint
        if len(self._seen) < MAX_TRACKED:
            self._seen.add(endpoint)
        now = self._clock()
        if self._logged_at is None or now - self._logged_at >= LOG_EVERY:
            more = f" ({self._unlogged} more refusals not logged)" if self._unlogged else ""
            log.warning("endpoint %r is not declared in any collection: registration "
                        "refused (4.03)%s", endpoint[:200], more)
            self._logged_at, self._unlogged = now, 0
        else:
            self._unlogged += 1
        self._schedule_write()

    def _schedule_write(self) -> None:
        if self._record is None or self._pending is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a direct call): write now
            self.write()
            return
        self._pending = loop.call_later(WRITE_EVERY, self.write)

    def write(self) -> None:
        """Store the count and the first endpoint refused (for /status)."""
        self._pending = None
        if self._record is not None and self._first is not None:
            self._record({"undeclared": len(self._seen), "first": self._first,
                          "capped": len(self._seen) >= MAX_TRACKED})

    def close(self) -> None:
        """Write what is pending now: the store closes after this."""
        if self._pending is not None:
            self._pending.cancel()
            self.write()
