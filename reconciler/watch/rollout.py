"""Pure reading of `/status` for `fota status`: each collection's progress, and whether
the rollout being watched has ended and how (as `kubectl rollout status`: success, or a
halt or failures). Called by `watch.render` and `watch.follow`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from reconciler.model.status import UpdateState


class Outcome(Enum):
    SUCCEEDED = "succeeded"  # every watched device runs its target
    HALTED = "halted"  # a failureThreshold stopped new starts: a person must act
    FAILED = "failed"  # nothing left to do, but some devices failed (UpdateFailed, Reverted)

    @property
    def exit_code(self) -> int:
        return 0 if self is Outcome.SUCCEEDED else 1


@dataclass(frozen=True, slots=True)
class Wave:
    """One wave of a collection's rollout, as /status shows it under rollout.waves."""

    name: str
    members: int
    current: int
    failed: int
    in_flight: int

    def line(self, collection_id: str) -> str:
        return (f"{collection_id}/{self.name}: {self.current}/{self.members} Current, "
                f"{self.in_flight} in flight, {self.failed} failed")


@dataclass(frozen=True, slots=True)
class Progress:
    collection_id: str
    management: str
    target: str | None
    devices: int
    states: dict[str, int]
    halted: bool
    reason: str | None
    waves: tuple[Wave, ...] = ()
    wave: str | None = None  # the wave the rollout is at, and its stage

    @property
    def current(self) -> int:
        return self.states.get(UpdateState.CURRENT.value, 0)

    def count(self, *, in_flight: bool = False, terminal: bool = False) -> int:
        return sum(n for s, n in self.states.items() if _known(s) and (
            (in_flight and UpdateState(s).in_flight) or (terminal and UpdateState(s).terminal)))

    @property
    def managed(self) -> int:
        """Devices with a target (the rest: disabled scope, no state)."""
        return sum(self.states.values())

    def outcome(self) -> Outcome | None:
        if self.halted:
            return Outcome.HALTED
        if self.current == self.managed:
            return Outcome.SUCCEEDED
        if self.current + self.count(terminal=True) == self.managed:
            return Outcome.FAILED
        return None

    def line(self) -> str:
        """One plain line, for logs and a terminal that is not a TTY."""
        text = (f"{self.collection_id}: {self.current}/{self.managed} Current, "
                f"{self.count(in_flight=True)} in flight, {self.count(terminal=True)} failed")
        text += f", wave {self.wave}" if self.wave else ""
        return text + (f", halted: {self.reason}" if self.halted else "")


def progress(status: dict[str, Any], only: str | None = None) -> list[Progress]:
    """The collections of a /status body (all, or `only`), disabled ones left out."""
    found = []
    for c in status.get("collections") or []:
        if only is not None and c.get("collectionId") != only:
            continue
        if c.get("management") == "disabled":
            continue
        found.append(Progress(
            collection_id=str(c.get("collectionId")), management=str(c.get("management")),
            target=c.get("targetFirmwareId"), devices=int(c.get("devices") or 0),
            states={str(k): int(v) for k, v in (c.get("states") or {}).items()},
            halted=bool(c.get("halted")), reason=c.get("haltReason"),
            **_waves((c.get("rollout") or {}).get("waves"))))
    return found


def _waves(shown: object) -> dict[str, Any]:
    """The waves of /status's rollout.waves (absent without waves in git)."""
    if not isinstance(shown, dict):
        return {}
    waves = tuple(Wave(str(w.get("name")), int(w.get("members") or 0),
                       int(w.get("current") or 0), int(w.get("failed") or 0),
                       int(w.get("inFlight") or 0))
                  for w in shown.get("waves") or [] if isinstance(w, dict))
    at = f"{shown.get('current')} ({shown.get('stage')})" if shown.get("current") else None
    return {"waves": waves, "wave": at}


def overall(collections: list[Progress]) -> Outcome | None:
    """The watched rollout's end: a halt anywhere at once (it waits for a person), else
    None while any collection still moves, then failed if any device failed."""
    outcomes = [c.outcome() for c in collections]
    if Outcome.HALTED in outcomes:
        return Outcome.HALTED
    if any(o is None for o in outcomes):
        return None
    return Outcome.FAILED if Outcome.FAILED in outcomes else Outcome.SUCCEEDED


def _known(state: str) -> bool:
    return state in UpdateState._value2member_map_
