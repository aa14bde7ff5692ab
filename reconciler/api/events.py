"""`GET /events` (Server-Sent Events) and `GET /status/events` (pages): the store's event
log as a feed, filterable by collection and device. Built by `events_router`; called by
`app.create_app`, behind the same token rule as every other route.

Each stream reads the log from its own cursor (`Last-Event-ID`, `since`, or the newest
event), one page at a time, and waits on the store's `EventHub` between pages: a client
holds at most one page in memory plus uvicorn's write buffer (its flow control pauses us
at the high-water mark), and a send that does not complete within `send_timeout` (a
client that stopped reading) drops that client. Concurrent streams are capped (JSON 503
beyond), a comment line every `keepalive` seconds keeps proxies from closing an idle
stream, and `EventHub.close()` at shutdown ends every stream. When the store pruned
the log past a stream's cursor (`store.retention`), the stream says so once with a
`gap` event before what is left, and `/status/events` with `prunedThrough` and `gap`.

Starlette's StreamingResponse rather than sse-starlette: that library patches uvicorn's
`Server.handle_exit` when imported and polls for shutdown every 0.5 s in a task per event
loop, process-wide state that this app factory avoids; the SSE framing is a few lines.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from reconciler.api import render, schemas
from reconciler.api.errors import ApiError, check_id, error_response, not_found
from reconciler.api.openapi import errors
from reconciler.api.routes import JsonBytes, refuse_writes
from reconciler.store import EventHub, EventRecord, StoreReader
from reconciler.store.event_log import MAX_PAGE

log = logging.getLogger(__name__)
HEAD_MARK = "fota.head"  # set in the scope by head.HeadAsGet: a HEAD never opens a stream


@dataclass(frozen=True, slots=True)
class StreamLimits:
    max_clients: int = 32  # concurrent /events streams; beyond: 503
    keepalive: float = 15.0  # seconds of silence before a comment line
    send_timeout: float = 30.0  # a client that takes no bytes this long is dropped
    page: int = 100  # events read (and held) per step of one stream
    retry_ms: int = 2000  # the reconnection delay EventSource clients are told
    poll: float = 1.0  # without a hub (a store another process writes): look this often
    # After a wakeup, let this long's commits gather before reading: a rollout commits
    # hundreds of times a second, and each stream reading (and sending) once per commit
    # made ten dashboards cost the rollout more than the events themselves.
    gather: float = 0.1


def record(e: EventRecord) -> render.Json:
    return {"id": e.seq, "deviceId": e.device_id,
            **({"collectionId": e.collection_id} if e.collection_id else {}),
            "at": render.ms(e.at), "kind": e.kind, "message": e.message,
            "revision": e.revision}


def frame(e: EventRecord) -> bytes:
    """One SSE message: the id line lets EventSource resume with Last-Event-ID."""
    return b"id: %d\ndata: %s\n\n" % (e.seq, render.dumps(record(e)))


class _Frames:
    """The newest events' SSE messages, rendered once for every open stream: an event
    never changes under its id, and ten dashboards following one rollout would
    otherwise render each of its events ten times. Bounded (least recently used go)."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._kept: OrderedDict[int, bytes] = OrderedDict()

    def of(self, page: list[EventRecord]) -> bytes:
        parts = []
        for e in page:
            found = self._kept.get(e.seq)
            if found is None:
                found = self._kept[e.seq] = frame(e)
                if len(self._kept) > self._size:
                    self._kept.popitem(last=False)
            parts.append(found)
        return b"".join(parts)


@dataclass(frozen=True, slots=True)
class Filter:
    collection: str | None
    device: str | None

    @classmethod
    def checked(cls, reader: StoreReader, collection: str | None,
                device: str | None) -> Filter:
        """400 for a malformed id, 404 for one the store does not know."""
        if collection is not None and reader.collection(
                check_id("collection", collection)) is None:
            raise not_found("collection", collection)
        if device is not None and reader.device_collection(check_id("device", device)) is None:
            raise not_found("device", device)
        return cls(collection, device)

    def page(self, reader: StoreReader, after: int, limit: int) -> list[EventRecord]:
        return reader.events_after(after, collection=self.collection, device=self.device,
                                   limit=limit)


def events_router(reader: StoreReader, hub: EventHub | None,
                  limits: StreamLimits = StreamLimits()) -> APIRouter:
    router = APIRouter(tags=["events"])
    slots = _Slots(limits.max_clients)
    frames = _Frames()  # shared by this app's streams (one event loop: no lock needed)
    stream_docs: dict[int | str, dict[str, Any]] = {
        200: {"content": {"text/event-stream": {}},
              "description": "A stream of `id:`/`data:` messages (data: an event as in "
                             "/status/events) and keepalive comments"},
        **errors(400, 401, 404),
        503: {"model": schemas.Error, "description": "Too many event streams open"}}

    @router.get("/events", summary="Events as they happen (Server-Sent Events)",
                response_class=StreamingResponse, responses=stream_docs)
    async def get_events(
            request: Request, collection: str | None = None, device: str | None = None,
            since: Annotated[int | None, Query(ge=0)] = None,
            last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> Response:
        which = Filter.checked(reader, collection, device)
        cursor = _start(reader, last_event_id, since)
        if request.scope.get(HEAD_MARK):
            return Response(media_type="text/event-stream")
        if not slots.take():
            return error_response(503, f"too many event streams ({limits.max_clients} "
                                       "open); retry later", {"Retry-After": "5"})
        feed = _feed(reader, hub, which, cursor, limits, frames)
        return _EventStream(feed, slots.give_back, limits.send_timeout)

    @router.get("/status/events", summary="Events after a cursor, one page at a time",
                response_class=JsonBytes, response_model=None,
                responses={200: {"model": schemas.EventPage}, **errors(400, 401, 404)})
    async def get_event_page(
            collection: str | None = None, device: str | None = None,
            since: Annotated[int, Query(ge=0)] = 0,
            limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100) -> Response:
        page = Filter.checked(reader, collection, device).page(reader, since, limit)
        floor = reader.events_pruned_through()  # read after the page: see _Gaps
        body = {"events": [record(e) for e in page], "next": page[-1].seq if page else since,
                "prunedThrough": floor, "gap": since < floor}
        return JsonBytes(render.dumps(body))

    for path in ("/events", "/status/events"):
        refuse_writes(router, path)
    return router


def _start(reader: StoreReader, last_event_id: str | None, since: int | None) -> int:
    """Resume after Last-Event-ID (what EventSource sends on reconnect), else after
    `since`, else from now: a new client gets what happens next."""
    if last_event_id is not None and last_event_id.strip():
        try:
            value = int(last_event_id)
        except ValueError:
            value = -1
        if value < 0:
            raise ApiError(400, f"malformed Last-Event-ID {last_event_id[:20]!r}: expected "
                                "the id of an event (an integer >= 0)")
        return value
    return since if since is not None else reader.last_event_seq()


async def _feed(reader: StoreReader, hub: EventHub | None, which: Filter, cursor: int,
                limits: StreamLimits, frames: _Frames) -> AsyncIterator[bytes]:
    yield b"retry: %d\n\n" % limits.retry_ms  # also sends the headers at once
    wake = hub.subscribe() if hub is not None else None
    quiet_since = time.monotonic()
    gaps = _Gaps(reader, cursor)
    try:
        while hub is None or not hub.closed:
            page = which.page(reader, cursor, limits.page)
            gap = gaps.check(cursor, page)
            if page:
                cursor = page[-1].seq
                quiet_since = time.monotonic()
                yield gap + frames.of(page)
                if len(page) == limits.page:
                    continue  # more is waiting: read on before waiting
            elif gap:
                yield gap
            elif time.monotonic() - quiet_since >= limits.keepalive:
                quiet_since = time.monotonic()
                yield b": keepalive\n\n"
            left = limits.keepalive - (time.monotonic() - quiet_since)
            if wake is not None and hub is not None:
                if await wake.wait(max(left, 0.0)) and not hub.closed:
                    await asyncio.sleep(limits.gather)
            else:
                await asyncio.sleep(max(min(left, limits.poll), 0.0))
    finally:
        if wake is not None:
            wake.close()


def gap_frame(after: int, pruned_through: int) -> bytes:
    """A named SSE event (no id: the client's Last-Event-ID stays its own): the log was
    pruned past this stream's cursor, so events after `after` up to `prunedThrough` may
    be missing. EventSource's `onmessage` does not see it; `addEventListener("gap")` does,
    and a client that wants the whole picture reloads it from the API."""
    body = render.dumps({"after": after, "prunedThrough": pruned_through})
    return b"event: gap\ndata: %s\n\n" % body


class _Gaps:
    """Tells a stream, once per prune that overtook its cursor, that events are missing.
    The store is asked only when one can be: at the start, and when a page does not
    begin right after the cursor (a filter, a rolled-back id, or pruning)."""

    def __init__(self, reader: StoreReader, start: int) -> None:
        self._reader = reader
        self._start = start
        self._told = 0  # the pruned_through last told

    def check(self, cursor: int, page: list[EventRecord]) -> bytes:
        if cursor != self._start and (not page or page[0].seq == cursor + 1):
            return b""
        self._start = -1
        floor = self._reader.events_pruned_through()  # after the page: no false "all there"
        if cursor >= floor or floor <= self._told:
            return b""
        self._told = floor
        return gap_frame(cursor, floor)


class _Slots:
    """The count of open streams against the cap (one event loop: no lock needed)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open = 0

    def take(self) -> bool:
        if self.open >= self.cap:
            return False
        self.open += 1
        return True

    def give_back(self) -> None:
        self.open -= 1


class _EventStream(StreamingResponse):
    """A stream whose every send is bounded in time, giving its slot back however it
    ends (client gone, client too slow, shutdown)."""

    def __init__(self, feed: AsyncIterator[bytes], release: Callable[[], None],
                 send_timeout: float) -> None:
        super().__init__(feed, media_type="text/event-stream",
                         headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        self._release = release
        self._send_timeout = send_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def bounded(message: Message) -> None:
            async with asyncio.timeout(self._send_timeout):
                await send(message)

        try:
            await super().__call__(scope, receive, bounded)
        except TimeoutError:
            # At most one line per dropped client, and clients are capped: bounded.
            log.warning("dropped an event stream client that took no data for %gs",
                        self._send_timeout)
        finally:
            self._release()
