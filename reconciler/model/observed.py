"""What devices report and how far each update has come: the observed side of the diff.

The controller builds these from LwM2M reads and notifications and persists them through
the store; the engine's `diff` and `plan` read them; the API shows them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from reconciler.model.lwm2m import DeliveryMethod, FirmwareState, UpdateResult
from reconciler.model.status import UpdateState


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """The last values a device reported for Objects 3 and 5 (None = never read)."""

    endpoint: str
    firmware_version: str | None = None  # /3/0/3, as reported (compare trimmed)
    serial_number: str | None = None  # /3/0/2
    model_number: str | None = None  # /3/0/1
    manufacturer: str | None = None  # /3/0/0
    fw_state: FirmwareState | None = None  # /5/0/3
    update_result: UpdateResult | None = None  # /5/0/5
    delivery_method: DeliveryMethod | None = None  # /5/0/9
    reported_at: float = 0.0

    def with_values(self, **changes: object) -> DeviceReport:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class DeviceProgress:
    """The controller's record of one device's update towards one target.

    A change of `target_image_id` starts a fresh record. `executed_at` is set (and
    persisted) *before* Execute is sent, so a restart never executes the same download
    twice."""

    device_id: str
    target_image_id: str | None
    state: UpdateState
    message: str = ""
    attempts: int = 0  # attempts started for this target
    retries_left: int = 3
    phase_started_at: float | None = None
    deadline: float | None = None  # current phase times out at this instant
    next_attempt_at: float | None = None  # backoff: do not start before this
    executed_at: float | None = None
    updated_at: float = 0.0
    resets: int = 0  # empty /5/0/1 writes before this attempt could start (bounded)
    probes: int = 0  # Probes since the last Execute (they back off)
    executes: int = 0  # Executes sent in this attempt (bounded)
    # "runs 1.0.5, should run 1.1.0": set when the device left the target it had reached
    # (engine/drift.py), cleared when it runs its target again or the target changes.
    drift: str | None = None
    retry: int = 0  # the retry counter (collection's + device's) last seen: a raise retries
    # Push delivery (/5/0/9 = 1): interrupted pushes resumed in this attempt (bounded;
    # never a retry) and when the latest push of it went out (an interruption older than
    # that is an earlier push's; one before our start was cut by our restart). Pull: the
    # same count, of offers written again after the device lost the download (4).
    resumes: int = 0
    pushed_at: float | None = None

    def evolve(self, **changes: object) -> DeviceProgress:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def shown_message(self) -> str:
        """The message as shown (conditions, API): with the backoff's absolute end."""
        return with_next_attempt(self.message, self.next_attempt_at)


# The stored message never says "retry in 30s" (stale the moment it is read back); the
# instant is stored in `next_attempt_at` and rendered where the message is shown, as an
# absolute UTC time that cannot go stale in a cached body. `json_lists.py` renders the
# same text in SQL (strftime truncates to the second, as gmtime does here).
NEXT_ATTEMPT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def with_next_attempt(message: str, next_attempt_at: float | None) -> str:
    """`message (next attempt at 2026-11-29T20:31:05Z)`, or `message` with no backoff."""
    if next_attempt_at is None:
        return message
    at = time.strftime(NEXT_ATTEMPT_FORMAT, time.gmtime(next_attempt_at))
    return f"{message} (next attempt at {at})"


@dataclass(frozen=True, slots=True)
class PushStop:
    """How the latest push to a device ended early (loss or silence mid-transfer, or an
    error code), as the LwM2M layer saw it (`lwm2m.pushes`): the engine resumes it
    after a delay, or fails the attempt when the device refused it."""

    at: float  # when the push gave up
    block: int  # the next block the device has not acknowledged (0-based)
    blocks: int  # the package's blocks at the block size in use
    reason: str
    refused: bool = False  # the device answered an error code: resuming will not help


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """One line of a device's append-only history."""

    device_id: str
    at: float
    kind: str  # e.g. "registered", "state", "action", "error"
    message: str
    revision: str = ""
