"""The install phase of an update: Execute once the device holds the download, then ask
it how it is doing with backoff (Probe) until it comes back running the target.

A lost or unanswered Execute costs seconds, not `update_timeout`: a device still in
Downloaded (/5/0/3 = 2) with no failure after the Execute never got it, so it is sent
again, at most `max_executes` times. Called by `phases.downloading` and `machine.PHASE`.
"""

from __future__ import annotations

from reconciler.engine.actions import Execute, Probe
from reconciler.engine.decision import Ctx, Decision, moved, wait
from reconciler.engine.endings import fail, phase_deadline, timed_out
from reconciler.engine.policy import Outcome, classify
from reconciler.model.lwm2m import FirmwareState
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState as S


def execute(ctx: Ctx, record: DeviceProgress, again: bool = False) -> Decision:
    version = ctx.target.version
    if not ctx.delta.awake:
        msg = f"downloaded {version}; waiting for the device to speak"
        state = S.UPDATING if again else S.DOWNLOADED
        return moved(ctx, record, state, msg, wait(record, msg).actions)
    # executed_at goes out with the decision and is persisted (durably) before Execute is
    # sent, so a restart sees it and asks the device before anything else.
    executes = record.executes + 1
    msg = (f"Execute did not reach the device (/5/0/3 still 2, no restart); installing "
           f"{version} again (Execute {executes} of {ctx.config.max_executes})" if again
           else f"installing {version}; waiting for the device to restart")
    return moved(
        ctx, record, S.UPDATING, msg, (Execute(ctx.target.image_id),),
        executed_at=ctx.now, phase_started_at=ctx.now, executes=executes, probes=0,
        deadline=ctx.now + ctx.config.update_timeout, durable=True,
    )


def updating(ctx: Ctx, record: DeviceProgress) -> Decision:
    """Updating/Completed: success only by /3/0/3 (checked before this runs)."""
    assert ctx.delta.registration is not None
    executed = record.executed_at or 0.0
    report = ctx.report
    if report.reported_at > executed and report.fw_state is not FirmwareState.UPDATING:
        # A failed install returns to Downloaded (or Idle) with its Update Result set.
        outcome, text = classify(report.update_result)
        if outcome is not Outcome.OK:
            return fail(ctx, record, outcome, text)
        if report.fw_state is FirmwareState.DOWNLOADED and _asked(ctx, record):
            return _not_executed(ctx, record)
        idle = report.fw_state in (FirmwareState.IDLE, None)
        if idle and ctx.delta.registration.registered_at > executed:
            running = ctx.delta.reported_version or "an unknown version"
            msg = f"device came back running {running}, not {ctx.target.version}"
            return moved(ctx, record, S.REVERTED, msg, (), deadline=None)
    deadline = phase_deadline(ctx, record)
    if deadline is not None and ctx.now >= deadline:
        return timed_out(ctx, record, "device did not come back with the new version in time")
    reason = "waiting for the device to install and restart"
    if not ctx.delta.awake:
        return wait(record, reason, deadline)
    due = probe_due(ctx, record)
    if ctx.now >= due:
        return Decision((Probe(),), record.evolve(probes=record.probes + 1, updated_at=ctx.now))
    return wait(record, reason, due if deadline is None else min(due, deadline))


def probe_due(ctx: Ctx, record: DeviceProgress) -> float:
    """When to ask the device next: probe_delay after the Execute, then twice as long
    each time (5 s, 15 s, 35 s, 75 s, ... by default), until the deadline. After our
    own restart, at once (once: the Probe's record write is newer than the start)."""
    executed = record.executed_at or 0.0
    started = ctx.delta.server_started
    if executed < started and record.updated_at < started:
        return ctx.now
    return executed + ctx.config.probe_wait(record.probes + 1)


def _asked(ctx: Ctx, record: DeviceProgress) -> bool:
    """The report says what the device answered to a Probe (or a read after it came
    back), not only a value left over from before the Execute: a notification of /5/0/5
    alone would leave the stale /5/0/3 = 2 in the merged report."""
    if ctx.delta.registration is not None and (
            ctx.delta.registration.registered_at > (record.executed_at or 0.0)):
        return True  # read after the device registered again (Verify)
    # A Probe writes the record (probes + 1) before it is sent: a report at least as new
    # carries its answer.
    return record.probes > 0 and ctx.report.reported_at >= record.updated_at


def _not_executed(ctx: Ctx, record: DeviceProgress) -> Decision:
    """Still Downloaded and no failure after the Execute: it never reached the device."""
    if record.executes >= ctx.config.max_executes:
        msg = (f"/5/0/3 stayed 2 after Execute was sent {record.executes} times: the "
               f"device does not follow Object 5")
        return moved(ctx, record, S.UPDATE_FAILED, msg, (), deadline=None)
    return execute(ctx, record, again=True)


