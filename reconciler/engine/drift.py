"""Drift: a device that had reached its target and now reports another version, with no
update of ours in flight (flashed by hand, or rolled back by itself).

The rule, precisely: a device is Drifted when its progress record for its present
target was Current (it was found on the target or updated to it) and a fresh report
shows another version. A device that never reached the present target (a new target not
rolled out to it yet, an update under way, failed or waiting) is not drifted: it is
simply not updated yet. The record keeps why (`DeviceProgress.drift`) until the device
runs its target again or the target changes. `driftPolicy: correct` updates it again as
any device off its target; `report` only says so and never touches it. Called by
`machine._decide`.
"""

from __future__ import annotations

from reconciler.engine.actions import NoOp
from reconciler.engine.decision import Ctx, Decision, move
from reconciler.model.desired import DriftPolicy
from reconciler.model.observed import DeviceEvent, DeviceProgress
from reconciler.model.status import UpdateState as S

NOT_CORRECTED = "driftPolicy report: not corrected"
DRIFTED = "drifted: "  # how a drifted device's message begins (fota plan reads it)


def notice(ctx: Ctx, record: DeviceProgress) -> tuple[
        DeviceProgress, tuple[DeviceEvent, ...], Decision | None]:
    """For a device off its target whose record is Current or drifted: the record to go
    on with, its events, and the whole decision when drift is only reported (else None:
    the update phases take over, as for any device off its target)."""
    report_only = ctx.delta.drift_policy is DriftPolicy.REPORT
    runs = ctx.delta.reported_version or "an unknown version"
    what = f"runs {runs}, should run {ctx.target.version}"
    events: tuple[DeviceEvent, ...] = ()
    # Left the target it had reached; or, reported only, now runs yet another version.
    if record.state is S.CURRENT or (report_only and record.state is S.PENDING
                                     and record.drift != what):
        how = NOT_CORRECTED if report_only else "updating it again"
        record, events = move(ctx, record, S.PENDING, f"{DRIFTED}{what}; {how}",
                              drift=what, deadline=None)
    if report_only and record.state in (S.PENDING, S.TIMED_OUT):
        return record, events, Decision((NoOp(f"{DRIFTED}{NOT_CORRECTED}"),), record, events)
    return record, events, None
