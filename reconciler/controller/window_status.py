"""A collection's maintenance windows as /status shows them: per window whether it is
open, when its current or next opening starts and ends (absolute UTC: the status body is
cached, a relative time would go stale in it), and the instant at which that answer
changes, so the controller rewrites the status then. Called by `Decider.flush_status`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from reconciler.engine.windows import AT_FORMAT, NEVER, occurrence
from reconciler.model.desired import MaintenanceWindow

Json = dict[str, object]


def _at(instant: float) -> str | None:
    return None if instant == NEVER.start else time.strftime(AT_FORMAT, time.gmtime(instant))


def window_status(windows: Sequence[MaintenanceWindow], now: float) -> tuple[
        list[Json], float | None]:
    """(one entry per window, the next instant at which one opens or closes)."""
    shown: list[Json] = []
    edges: list[float] = []
    for window in windows:
        opening = occurrence(window, now)
        is_open = opening.contains(now)
        edges.append(opening.end if is_open else opening.start)
        shown.append({"name": window.name, "gates": window.gates.value,
                      "cron": window.cron, "timeZone": window.time_zone,
                      "durationSeconds": window.duration, "tags": dict(window.tags),
                      "open": is_open, "opensAt": _at(opening.start),
                      "closesAt": _at(opening.end)})
    edge = min(edges, default=None)
    return shown, (None if edge == NEVER.start else edge)


def next_window(shown: Sequence[Json]) -> Json | None:
    """The window open now, else the one opening first: the collection's headline."""
    open_now = [w for w in shown if w["open"]]
    if open_now:
        return open_now[0]
    waiting = [w for w in shown if w["opensAt"] is not None]
    return min(waiting, key=lambda w: str(w["opensAt"]), default=None)
