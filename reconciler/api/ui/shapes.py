"""What the dashboard's templates show, computed from the store's views: pure functions,
no I/O. Called by `pages.py` before rendering; the templates only lay these values out.

A progress bar counts the devices that have a target (state not None): Current ones fill
it, and the rest are split by kind so a stuck rollout shows where it is stuck.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from reconciler.model.status import UpdateState

# The bar's segments, left to right, and the states each gathers.
SEGMENTS: tuple[tuple[str, frozenset[str]], ...] = (
    ("current", frozenset({UpdateState.CURRENT.value})),
    ("inflight", frozenset(s.value for s in UpdateState if s.in_flight)),
    ("failed", frozenset(s.value for s in UpdateState if s.terminal)),
    ("timedout", frozenset({UpdateState.TIMED_OUT.value})),
    ("pending", frozenset({UpdateState.PENDING.value})),
)
_PROBLEM = re.compile(r"^(?P<file>[^:\s][^:]*):(?P<line>\d+): (?P<rest>.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Segment:
    kind: str
    devices: int
    x: float  # where it starts, in per mille of the bar
    width: float  # per mille


@dataclass(frozen=True, slots=True)
class Progress:
    label: str  # "all devices", or a wave's name
    total: int
    current: int
    percent: int  # floor: 100 only once every device is Current
    segments: tuple[Segment, ...]
    failed: int
    in_flight: int


@dataclass(frozen=True, slots=True)
class Problem:
    """A source error split for display: `file:line` apart from the message."""

    where: str | None
    message: str


def progress(counts: Mapping[str, int], label: str = "all devices") -> Progress:
    total = sum(counts.values())
    segments, x = [], 0.0
    by_kind = {kind: sum(n for s, n in counts.items() if s in states)
               for kind, states in SEGMENTS}
    for kind, _ in SEGMENTS:
        n = by_kind[kind]
        width = 1000 * n / total if total else 0.0
        if n:
            segments.append(Segment(kind, n, round(x, 2), round(width, 2)))
        x += width
    current = by_kind["current"]
    return Progress(label=label, total=total, current=current,
                    percent=current * 100 // total if total else 100,
                    segments=tuple(segments), failed=by_kind["failed"],
                    in_flight=by_kind["inflight"])


def wave_progress(rollout: Mapping[str, object]) -> list[Progress]:
    """One bar per wave when the controller reports waves (`rollout["waves"]["waves"]`:
    name, members, current, failed, inFlight each); none otherwise, and the collection's
    own bar stands alone."""
    block = rollout.get("waves")
    waves = block.get("waves") if isinstance(block, Mapping) else None
    if not isinstance(waves, list):
        return []
    bars = []
    for n, wave in enumerate(waves, start=1):
        if not isinstance(wave, Mapping):
            continue
        figures = {k: v if isinstance(v := wave.get(k), int) else 0
                   for k in ("members", "current", "failed", "inFlight")}
        rest = figures["members"] - figures["current"] - figures["failed"] - figures["inFlight"]
        counts = {UpdateState.CURRENT.value: figures["current"],
                  UpdateState.UPDATE_FAILED.value: figures["failed"],
                  UpdateState.DOWNLOADING.value: figures["inFlight"],
                  UpdateState.PENDING.value: max(rest, 0)}
        bars.append(progress(counts, str(wave.get("name") or f"wave {n}")))
    return bars


def wave_summary(rollout: Mapping[str, object]) -> str | None:
    """"wave canary (2 of 3): soaking" from the controller's wave position, if any."""
    block = rollout.get("waves")
    if not isinstance(block, Mapping) or not block.get("current"):
        return None
    total = block.get("waves")
    index = block.get("index")
    of = (f" ({index + 1} of {len(total)})"
          if isinstance(index, int) and isinstance(total, list) else "")
    gate = block.get("gate") or block.get("stage")
    return f"wave {block['current']}{of}: {gate}" if gate else f"wave {block['current']}{of}"


def problems(errors: Sequence[str]) -> list[Problem]:
    found = []
    for text in errors:
        match = _PROBLEM.match(text)
        found.append(Problem(f"{match['file']}:{match['line']}", match["rest"]) if match
                     else Problem(None, text))
    return found


def when(epoch_seconds: float | None) -> str:
    if epoch_seconds is None:
        return ""
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def short(revision: str | None) -> str:
    return revision[:12] if revision else ""


def resume_hint(rollout: Mapping[str, object]) -> str:
    """How an operator resumes a halted rollout: through git, like every change."""
    threshold = rollout.get("failureThreshold")
    raised = f" (now {threshold})" if threshold else ""
    return ("Fix the cause, then merge a commit to this collection's collection.yaml that "
            f"changes firmware.target or raises rollout.failureThreshold{raised}.")
