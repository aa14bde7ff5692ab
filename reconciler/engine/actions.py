"""The action values `decide()` returns: data describing one effect each, never the effect.

The controller's executor is the only code that turns these into LwM2M requests, in the
order given, after persisting the progress record that came with them. Keeping actions as
frozen values lets the unit tests compare whole plans for equality.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.lwm2m import FW_STATE, FW_UPDATE_RESULT, Path


@dataclass(frozen=True, slots=True)
class ReadState:
    """Read /3/0 (firmware version, identity) and /5/0 (state, result, delivery); with
    `firmware_only`, /5/0 alone (the version is known: `phases.start`)."""

    reason: str
    firmware_only: bool = False


@dataclass(frozen=True, slots=True)
class Verify:
    """Read /3/0 after the device came back from an Execute, and /5/0 unless /3/0/3
    already reports `version`: the update is done then, by /3/0/3 alone (the engine's
    rule), and /5/0's state, result and delivery method are left unknown, to be read when
    an attempt needs them (`phases.start`), instead of a request on every update's last
    step."""

    image_id: str
    version: str


@dataclass(frozen=True, slots=True)
class Probe:
    """Ask a device how its install is going: read /5/0/3, /5/0/5 and /3/0/3. No answer
    is expected while it restarts; the engine asks again later."""


@dataclass(frozen=True, slots=True)
class Observe:
    """Start Observe on the Object 5 resources that drive the state machine (one Observe of
    their instance when the device allows it: `controller.watches`)."""

    paths: tuple[Path, ...] = (FW_STATE, FW_UPDATE_RESULT)
    # Also a read of /5/0 (state, result, delivery method): the first answer to an
    # Observe of the instance is one (observed or not); when the instance was not asked
    # for or answered an error, /5/0 is read as well.
    read: bool = False


@dataclass(frozen=True, slots=True)
class CancelDownload:
    """Write an empty /5/0/1, which resets a device's Object 5 to Idle (spec 5.1)."""

    reason: str


@dataclass(frozen=True, slots=True)
class WriteUri:
    """Offer the image under a per-device URI and write that URI to /5/0/1 (pull)."""

    image_id: str
    attempt: int  # the attempt number, for the executor's log line


@dataclass(frozen=True, slots=True)
class PushPackage:
    """Write the image block-wise to /5/0/0 (push only devices); `timeout` in seconds.
    `resume`: continue an interrupted push after the last block the device acknowledged
    (from block 0 when none is known). `digest`: the image's sha256, which with the id
    says which bytes a recorded position counts (another digest: block 0)."""

    image_id: str
    attempt: int
    timeout: float
    resume: bool = False
    digest: str = ""


@dataclass(frozen=True, slots=True)
class Execute:
    """Execute /5/0/2. A transport error right after it is expected: devices reboot."""

    image_id: str


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to send now; look again at `until` (None: when the device speaks)."""

    reason: str
    until: float | None = None


@dataclass(frozen=True, slots=True)
class NoOp:
    """Nothing to do for this device and nothing to wait for."""

    reason: str


Action = (
    ReadState | Verify | Probe | Observe | CancelDownload | WriteUri | PushPackage | Execute
    | Wait | NoOp
)

# Actions that change something on the device; everything else only reads or waits.
EFFECTS = (CancelDownload, WriteUri, PushPackage, Execute)
