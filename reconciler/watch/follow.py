"""`fota status --watch`: follow a rollout until it ends, driven by `/events`.

Events are only triggers: after one (or a burst), `/status` is read again, at most every
`REFRESH` seconds, and the rollout's figures come from it alone. The stream is read in a
daemon thread (urllib blocks) that hands messages over a queue, so the main thread also
wakes every `REFRESH` seconds to keep the deadline. When the stream drops, `/status` is
polled with a bounded backoff until it can be opened again (resuming after the last
event seen); an API unreachable for `GIVE_UP` seconds ends the watch. Called by
`watch.cmd`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from reconciler.watch.client import Api, ApiError, Message
from reconciler.watch.render import LiveView
from reconciler.watch.rollout import Outcome, overall, progress

REFRESH = 0.5  # seconds between two /status reads, however many events arrive
BACKOFF = (1.0, 10.0)  # first and longest wait between polls while the stream is down
GIVE_UP = 120.0  # seconds without any answer from the API


class Unreachable(Exception):
    """The API gave no answer for GIVE_UP seconds."""


_ALIVE, _ENDED = object(), object()
Item = Message | ApiError | object


def follow(api: Api, only: str | None, view: LiveView, timeout: float | None,
           clock: Callable[[], float] = time.monotonic) -> Outcome | None:
    """The rollout's outcome, or None when `timeout` ran out first."""
    deadline = None if timeout is None else clock() + timeout
    last_id: int | None = None
    delay, answered = BACKOFF[0], clock()
    while deadline is None or clock() < deadline:
        items: queue.Queue[Item] = queue.Queue()
        threading.Thread(target=_read, args=(api, last_id, only, items), daemon=True,
                         name="fota-status-events").start()
        outcome, last_id, why = _on_stream(api, only, view, items, deadline, clock, last_id)
        if outcome is not None or why is None:
            return outcome
        view.note(f"event stream lost ({why}); polling /status")
        try:
            outcome = _refresh(api, only, view)
            answered = clock()
        except ApiError as exc:
            if clock() - answered > GIVE_UP:
                raise Unreachable(str(exc)) from exc
        if outcome is not None:
            return outcome
        time.sleep(min(delay, _left(deadline, clock)))
        delay = min(delay * 2, BACKOFF[1])
    return None


def _read(api: Api, last_id: int | None, only: str | None, items: queue.Queue[Item]) -> None:
    try:
        for message in api.events(last_id, collection=only):
            items.put(_ALIVE if message is None else message)
        items.put(_ENDED)
    except ApiError as exc:
        items.put(exc)


def _on_stream(api: Api, only: str | None, view: LiveView, items: queue.Queue[Item],
               deadline: float | None, clock: Callable[[], float], last_id: int | None,
               ) -> tuple[Outcome | None, int | None, str | None]:
    """Follow one stream: (outcome, last event id, why the stream ended or None when the
    deadline came)."""
    dirty, refreshed = False, float("-inf")
    while deadline is None or clock() < deadline:
        try:
            item = items.get(timeout=REFRESH)
        except queue.Empty:
            item = None
        if isinstance(item, ApiError):
            return None, last_id, str(item)
        if item is _ENDED:
            return None, last_id, "closed by the server"
        if isinstance(item, Message):
            last_id = item.id if item.id is not None else last_id
        dirty = dirty or item is not None  # the first line (retry:) says we are connected
        if dirty and clock() - refreshed >= REFRESH:
            try:
                outcome = _refresh(api, only, view)
            except ApiError as exc:
                return None, last_id, str(exc)
            dirty, refreshed = False, clock()
            if outcome is not None:
                return outcome, last_id, None
    return None, last_id, None


def _refresh(api: Api, only: str | None, view: LiveView) -> Outcome | None:
    collections = progress(api.get("/status"), only)
    view.show(collections)
    return overall(collections)


def _left(deadline: float | None, clock: Callable[[], float]) -> float:
    return float("inf") if deadline is None else max(deadline - clock(), 0.0)
