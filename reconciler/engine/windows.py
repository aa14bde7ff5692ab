"""Maintenance windows, evaluated from the injected clock: may a device start a download
or be sent Execute now, and if not, until when does it wait and what does it say.

A window opens each time its cron expression fires in its time zone (cronsim walks the
local wall clock, so a DST change moves the UTC instant, and a skipped 02:30 fires at
03:00) and stays open for `duration` seconds of elapsed time. Several windows that gate
the same step: the union (any open one allows it). The one place a window is computed
is `occurrence`, memoised per (cron, duration, zone) for as long as its answer holds, so
a decision costs the same for 1,000 devices or 100,000. Called by `phases`.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from cronsim import CronSim

from reconciler.model.desired import MaintenanceWindow, WindowGate

# A device waiting for a window is looked at again at least this often (seconds), so a
# wall clock set right or a window changed in git is noticed without a trigger.
RECHECK = 900.0
# Back-to-back occurrences ("*/10 * * * *" for 1h) merge into one opening; this many at
# most, then the opening is cut there and computed again when it ends.
MERGE_LIMIT = 1000
MEMO_LIMIT = 4096  # distinct windows remembered; the whole memo is dropped past it
AT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # as `with_next_attempt`: absolute, never stale


@dataclass(frozen=True, slots=True)
class Opening:
    """One opening of a window: [start, end) in epoch seconds."""

    start: float
    end: float

    def contains(self, now: float) -> bool:
        return self.start <= now < self.end


NEVER = Opening(float("inf"), float("inf"))  # a cron that matches no date any more

_Key = tuple[str, float, str]
# key -> (computed at, valid until, opening): the answer holds for now in that range
_memo: dict[_Key, tuple[float, float, Opening]] = {}


def occurrence(window: MaintenanceWindow, now: float) -> Opening:
    """The opening that contains `now`, or else the next one."""
    key = (window.cron, window.duration, window.time_zone)
    hit = _memo.get(key)
    if hit is not None and hit[0] <= now < hit[1]:
        return hit[2]
    opening = _compute(window, now)
    # Open: the same answer until it closes. Closed: until it opens (no opening starts
    # in between, or it would have been the one found).
    if len(_memo) >= MEMO_LIMIT:
        _memo.clear()
    _memo[key] = (now, opening.end if opening.contains(now) else opening.start, opening)
    return opening


def _compute(window: MaintenanceWindow, now: float) -> Opening:
    zone = ZoneInfo(window.time_zone)
    # Fires after now - duration are the ones whose opening has not ended by now.
    fires = CronSim(window.cron, datetime.fromtimestamp(now - window.duration, zone))
    start = _next(fires)
    if start is None:
        return NEVER
    end = start + window.duration
    for _ in range(MERGE_LIMIT):
        if start > now:
            break  # not open yet: merging only matters for the opening we are in
        later = _next(fires)
        if later is None or later > end:
            break
        end = later + window.duration
    return Opening(start, end)


def _next(fires: CronSim) -> float | None:
    try:
        return next(fires).timestamp()
    except StopIteration:  # cronsim gives up on dates that never come (Feb 30)
        return None


@dataclass(frozen=True, slots=True)
class Closed:
    """The step waits: for `window` (the one opening first), at `opening.start`."""

    window: MaintenanceWindow
    opening: Opening

    def wake_at(self, now: float) -> float:
        return min(self.opening.start, now + RECHECK)

    def describe(self) -> str:
        """`the window night 02:00-04:00 Europe/Oslo, opens at 2026-11-30T01:00:00Z`."""
        return sys.intern(f"the window {self.window.name} {self.when()}")

    def when(self) -> str:
        """`02:00-04:00 Europe/Oslo, opens at 2026-11-30T01:00:00Z`."""
        if self.opening is NEVER:
            return f"never opens ({self.window.cron})"
        return _when(self.window.time_zone, self.opening.start, self.opening.end)


@functools.lru_cache(maxsize=MEMO_LIMIT)
def _when(zone_name: str, start: float, end: float) -> str:
    """Rendered once per opening: every device the window holds says the same."""
    zone = ZoneInfo(zone_name)
    local = [datetime.fromtimestamp(t, zone).strftime("%H:%M") for t in (start, end)]
    at = time.strftime(AT_FORMAT, time.gmtime(start))
    return f"{local[0]}-{local[1]} {zone_name}, opens at {at}"


def outlook(window: MaintenanceWindow, now: float) -> str:
    """`night (execute): open now, closes at ...` or `night (execute): opens at ...`,
    the local hours and zone included: one line of `fota plan`."""
    opening = occurrence(window, now)
    tags = "".join(f", {k}={v}" for k, v in sorted(window.tags.items()))
    head = f"{window.name} ({window.gates.value}{tags})"
    if opening.contains(now):
        at = time.strftime(AT_FORMAT, time.gmtime(opening.end))
        return f"{head}: open now, closes at {at}"
    return f"{head}: {Closed(window, opening).when()}"


def closed_for(windows: Sequence[MaintenanceWindow], step: WindowGate,
               now: float) -> Closed | None:
    """None when `step` may run now (no window gates it, or one of those is open), else
    the window that opens first."""
    first: Closed | None = None
    for window in windows:
        if not window.gates.gates(step):
            continue
        opening = occurrence(window, now)
        if opening.contains(now):
            return None
        if first is None or opening.start < first.opening.start:
            first = Closed(window, opening)
    return first
