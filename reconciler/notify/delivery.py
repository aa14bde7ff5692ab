"""`Sender`: one provider's bounded queue and the task that delivers it over HTTP.

`offer` never waits: a full queue drops the request and counts it. The task sends one
request at a time with httpx, retrying a network error, a timeout, 408, 429 or a 5xx with
exponential backoff until the request's deadline; a request still undelivered then (the
receiver was down for long) is dropped and counted, and so is one the receiver refused
(any other 4xx: sending it again cannot help). The state changes between healthy and
failing are logged once each, never per request. Owned by `reconciler.notify.notifier`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from reconciler.notify.messages import Request

log = logging.getLogger("reconciler.notify")
# httpx logs every request's URL at INFO (httpcore its steps at DEBUG): a Slack webhook
# URL is a secret, so they speak only of what went wrong. Our own logs name the provider.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    queue_size: int = 1000  # requests waiting per provider; beyond: dropped, counted
    timeout: float = 10.0  # seconds for one HTTP request (connect, send, answer)
    backoff: float = 1.0  # first retry delay; doubles per attempt
    max_backoff: float = 60.0
    deadline: float = 600.0  # seconds from queueing after which a request is dropped


@dataclass(frozen=True, slots=True)
class Item:
    request: Request
    seq: int | None  # the event it carries (None: a commit status)
    on_done: Callable[[bool], None] | None = None  # delivered?
    queued_at: float = 0.0


class Sender:
    """Delivers one provider's requests in order. `start()` once, `close()` at the end."""

    def __init__(self, name: str, config: DeliveryConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.config = config
        self.clock = clock
        self.sent = 0
        self.dropped = 0  # full queue, deadline passed, or refused by the receiver
        self.retries = 0
        self.last_error: str | None = None
        self._queue: asyncio.Queue[Item] = asyncio.Queue(config.queue_size)
        self._pending: collections.deque[int] = collections.deque()  # event seqs, in order
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._busy = False  # a request taken from the queue is being delivered

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"notify-{self.name}")

    def offer(self, request: Request, seq: int | None = None,
              on_done: Callable[[bool], None] | None = None) -> bool:
        """Queue the request; False (and counted as dropped) when the queue is full."""
        try:
            self._queue.put_nowait(Item(request, seq, on_done, self.clock()))
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        if seq is not None:
            self._pending.append(seq)
        return True

    def safe_cursor(self, read: int) -> int:
        """The highest event number every earlier event of which this sender finished
        (delivered or dropped), given that the notifier has read up to `read`."""
        return self._pending[0] - 1 if self._pending else read

    def queued(self) -> int:
        """Requests waiting, the one being sent included."""
        return self._queue.qsize() + (1 if self._busy else 0)

    def stats(self) -> dict[str, object]:
        return {"sent": self.sent, "dropped": self.dropped, "retries": self.retries,
                "queued": self._queue.qsize(), "failing": self._failing,
                "lastError": self.last_error}

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(timeout=self.config.timeout, limits=limits,
                                     follow_redirects=False) as client:
            while True:
                item = await self._queue.get()
                self._busy = True
                delivered = await self._deliver(client, item)
                self._busy = False
                if item.seq is not None:
                    self._pending.popleft()
                if item.on_done is not None:
                    item.on_done(delivered)

    async def _deliver(self, client: httpx.AsyncClient, item: Item) -> bool:
        """Bounded: attempts back off exponentially and stop at the item's deadline."""
        deadline = item.queued_at + self.config.deadline
        delay = self.config.backoff
        while True:
            problem, retry = await self._attempt(client, item.request)
            if problem is None:
                self.sent += 1
                self._healthy()
                return True
            self._failed(problem)
            if not retry or self.clock() + delay > deadline:
                self.dropped += 1
                return False
            self.retries += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.config.max_backoff)

    async def _attempt(self, client: httpx.AsyncClient,
                       request: Request) -> tuple[str | None, bool]:
        """(None, _) when delivered, else (what went wrong, worth retrying)."""
        try:
            answer = await client.post(request.url, content=request.body,
                                       headers=list(request.headers))
        except httpx.TimeoutException:
            return f"no answer within {self.config.timeout:g}s", True
        except httpx.HTTPError as exc:  # never the URL: a Slack URL is a secret
            return f"{type(exc).__name__}: {str(exc).replace(request.url, '<url>')}", True
        code = answer.status_code
        if code < 300:
            return None, False
        return f"HTTP {code}", code in (408, 429) or code >= 500

    def _failed(self, problem: str) -> None:
        self.last_error = problem
        if not self._failing:
            self._failing = True
            log.warning("notification provider %r failing: %s (retrying with backoff)",
                        self.name, problem)

    def _healthy(self) -> None:
        if self._failing:
            self._failing = False
            log.info("notification provider %r delivering again (%d dropped so far)",
                     self.name, self.dropped)
