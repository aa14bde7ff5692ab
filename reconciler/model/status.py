"""The controller's view of one device's update, in the reference's words, and the
Flux-style conditions computed from it.

Written by the controller (through the store), read by the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class UpdateState(StrEnum):
    """`firmware.state` strings exactly as the reference API reports them."""

    CURRENT = "Current"
    PENDING = "Pending"
    INITIALIZING = "Initializing"
    DOWNLOADING = "Downloading"
    DOWNLOADED = "Downloaded"
    UPDATING = "Updating"
    COMPLETED = "Completed"
    UPDATE_FAILED = "UpdateFailed"
    TIMED_OUT = "TimedOut"
    REVERTED = "Reverted"

    @property
    def terminal(self) -> bool:
        """Holds until the target changes."""
        return self in (UpdateState.UPDATE_FAILED, UpdateState.REVERTED)

    @property
    def in_flight(self) -> bool:
        return self in (
            UpdateState.INITIALIZING,
            UpdateState.DOWNLOADING,
            UpdateState.DOWNLOADED,
            UpdateState.UPDATING,
            UpdateState.COMPLETED,
        )


class ConditionType(StrEnum):
    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    DRIFTED = "Drifted"  # only while a device is drifted (engine/drift.py)


@dataclass(frozen=True, slots=True)
class Condition:
    type: ConditionType
    status: bool
    reason: str
    message: str
    last_transition: float  # seconds since the epoch
    revision: str  # git revision of the desired state it was computed against
