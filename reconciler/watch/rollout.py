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
class Progress:
    collection_id: str
    management: str
    target: str | None
    devices: int
    states: dict[str, int]
    halted: bool
    reason: str | None

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
            halted=bool(c.get("halted")), reason=c.get("haltReason")))
    return found


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
