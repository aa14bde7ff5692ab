"""The first two active phases of an update: starting an attempt (with the bounded reset
of a busy Object 5) and downloading (a push cut short is resumed by `pushing.py`, a pull
the device lost to the link is offered again by `pulling.py`).
Installing is `install.py`.

Each takes the decision context and the progress record and returns a `Decision`;
`decide()` picks the phase from the record's state (`machine.PHASE`). Failures and
timeouts go to `endings.py`.
"""

from __future__ import annotations

from dataclasses import replace

from reconciler.engine import install, pulling, pushing, windowed
from reconciler.engine.actions import (
    Action,
    CancelDownload,
    Observe,
    PushPackage,
    ReadState,
    WriteUri,
)
from reconciler.engine.decision import Ctx, Decision, moved, wait
from reconciler.engine.endings import fail, phase_deadline, timed_out
from reconciler.engine.policy import Outcome, classify
from reconciler.model.lwm2m import DeliveryMethod, FirmwareState, UpdateResult
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState as S

BUSY = (FirmwareState.DOWNLOADING, FirmwareState.DOWNLOADED)
# Update Results a restart of ours causes mid-download (the URI or the socket went away).
OUR_RESTART = (UpdateResult.CONNECTION_LOST, UpdateResult.INVALID_URI)
OBSERVED_POLL_FACTOR = 4  # poll this much less often while an Observe runs
# After the server delivered the package (`Delta.delivered_at`), the device should say
# Downloaded within moments; if nothing came (a lost notification), ask it this long
# after the delivery, then after gaps twice as long each time (capped at the poll
# interval), at most DELIVERED_CHECKS times: 1, 3, 7, 15, 31, 61 s by default.
DELIVERED_CHECK = 1.0
DELIVERED_CHECKS = 6


def start(ctx: Ctx, record: DeviceProgress) -> Decision:
    """Pending, TimedOut or drifted: begin the next attempt if everything allows it
    (backoff, the rollout gate, a window that gates downloads), once Object 5 is known."""
    if record.next_attempt_at is not None and ctx.now < record.next_attempt_at:
        return wait(record, "backing off before the next attempt", record.next_attempt_at)
    if not ctx.gate.may_start:
        held = wait(record.evolve(message=ctx.gate.reason), ctx.gate.reason, ctx.gate.until)
        return replace(held, gated=True)
    if (window := windowed.download_held(ctx, record)) is not None:
        return window
    if not ctx.delta.awake:
        return wait(record, "queue mode: waiting for the device to speak")
    fw_state = ctx.report.fw_state
    if fw_state is None and ctx.report.reported_at < record.updated_at:
        return _read_object_5(ctx, record)
    if fw_state is FirmwareState.UPDATING:
        return _installing_other(ctx, record)
    if fw_state in BUSY:
        return _reset(ctx, record, fw_state)
    return _begin(ctx, record)


def _read_object_5(ctx: Ctx, record: DeviceProgress) -> Decision:
    """/5/0/3 is unknown (not read since the device came back on its last target:
    `Verify`): know it before acting on it, since a busy Object 5 is reset first. Once
    per change of the record: a device that never reports /5/0/3 starts as before. The
    Observe this attempt sets up anyway is that read (its first answer is the value),
    so it is one request, not a read and then an Observe."""
    if ctx.delta.can_observe and not ctx.delta.observing:
        return Decision((Observe(read=True),), record)
    reason = "/5/0/3 unknown since the last update; reading it"
    return Decision((ReadState(reason, firmware_only=True),), record)


def _installing_other(ctx: Ctx, record: DeviceProgress) -> Decision:
    """The device installs firmware we did not Execute (left over from an earlier run, or
    its own): wait, reading every poll_interval, for at most update_timeout; still
    installing after that, it does not follow Object 5 (terminal, saying so)."""
    reason = "device is installing other firmware; waiting for it to finish"
    if record.deadline is None:
        held = record.evolve(message=reason, updated_at=ctx.now,
                             deadline=ctx.now + ctx.config.update_timeout)
        return wait(held, reason, ctx.now + ctx.config.poll_interval)
    last = ctx.report.reported_at
    if ctx.now >= record.deadline:
        if last < record.deadline:
            return Decision((ReadState("checking the install"),), record)
        msg = (f"/5/0/3 stayed 3 for {ctx.config.update_timeout:g}s though we sent no "
               f"Execute: the device does not follow Object 5")
        return moved(ctx, record, S.UPDATE_FAILED, msg, (), deadline=None)
    if ctx.now >= last + ctx.config.poll_interval:
        return Decision((ReadState("polling the install"),), record)
    return wait(record, reason, min(last + ctx.config.poll_interval, record.deadline))


def _reset(ctx: Ctx, record: DeviceProgress, fw_state: FirmwareState) -> Decision:
    """Left over from an earlier target or attempt: reset Object 5 to Idle (an empty
    /5/0/1) first. Bounded: each reset gets a doubling delay to take effect, and a device
    still busy after `max_resets` does not follow Object 5: terminal, saying so."""
    resets = record.resets
    if resets:
        settle = (record.phase_started_at or 0.0) + ctx.config.reset_wait(resets)
        if ctx.now < settle:
            return wait(record, "waiting for the device to reset Object 5", settle)
        if ctx.report.reported_at < settle:
            return Decision((ReadState("checking the reset"),), record)
        if resets >= ctx.config.max_resets:
            msg = (f"/5/0/3 stayed {int(fw_state)} after the URI was cleared {resets} "
                   f"time{'s' if resets > 1 else ''}: the device does not follow Object 5")
            return moved(ctx, record, S.UPDATE_FAILED, msg, (), deadline=None,
                         next_attempt_at=None)
    reason = "device holds another download; resetting it"
    actions = (CancelDownload(reason), ReadState("after reset"))
    # phase_started_at is when the last reset went out (an attempt's own phase starts
    # in _begin, which sets it again).
    return Decision(actions, record.evolve(resets=resets + 1, phase_started_at=ctx.now,
                                           updated_at=ctx.now))


def _begin(ctx: Ctx, record: DeviceProgress) -> Decision:
    attempt = record.attempts + 1
    budget = ctx.config.download_deadline(ctx.target)
    push = ctx.report.delivery_method is DeliveryMethod.PUSH_ONLY
    delivery: Action = (PushPackage(ctx.target.image_id, attempt, budget,
                                    digest=ctx.target.sha256) if push
                        else WriteUri(ctx.target.image_id, attempt))
    observe: tuple[Action, ...] = ()
    if ctx.delta.can_observe and not ctx.delta.observing:
        observe = (Observe(),)
    how = "pushing" if push else "offering"
    message = f"attempt {attempt}: {how} {ctx.target.version} ({ctx.target.length} bytes)"
    # Observe after the delivery: its first value must show the device's answer to this
    # attempt, not an Update Result left over from the previous one.
    return moved(
        ctx, record, S.INITIALIZING, message, (delivery, *observe),
        attempts=attempt, phase_started_at=ctx.now, resets=0, probes=0, executes=0,
        deadline=ctx.now + budget, next_attempt_at=None, executed_at=None,
        resumes=0, pushed_at=ctx.now if push else None,
    )


def downloading(ctx: Ctx, record: DeviceProgress) -> Decision:
    """Initializing/Downloading/Downloaded: never re-write /5/0/1 while this runs."""
    report = ctx.report
    seen = record.phase_started_at is None or report.reported_at >= record.phase_started_at
    if seen and report.fw_state is FirmwareState.DOWNLOADED:
        return windowed.execute_held(ctx, record) or install.execute(ctx, record)
    if seen and report.fw_state in (FirmwareState.IDLE, None):
        outcome, text = _download_result(ctx, record)
        if outcome is Outcome.RETRY and (again := pulling.reoffer(ctx, record)) is not None:
            return again  # the link lost the download (4): offered again, no retry spent
        if outcome is not Outcome.OK:
            return fail(ctx, record, outcome, text)
    if seen and report.fw_state is FirmwareState.DOWNLOADING and record.state is S.INITIALIZING:
        message = f"downloading {ctx.target.version}"
        return moved(ctx, record, S.DOWNLOADING, message, (*_poll(ctx, record),))
    deadline = phase_deadline(ctx, record)
    if deadline is not None and ctx.now >= deadline:
        return timed_out(ctx, record, "download did not finish before its deadline")
    if (resumed := pushing.resume(ctx, record)) is not None:
        return resumed  # a push cut short: resumed soon, not at the deadline
    return Decision(_poll(ctx, record), record)


def _download_result(ctx: Ctx, record: DeviceProgress) -> tuple[Outcome, str]:
    """Classify the Update Result. A lost connection or an Invalid URI during a download
    that began before this server started is our restart's doing, not the device's or
    the image's: it never costs a retry (nor counts toward the failure threshold)."""
    result = ctx.report.update_result
    outcome, text = classify(result)
    started = record.phase_started_at or 0.0
    if result in OUR_RESTART and started < ctx.delta.server_started:
        return Outcome.OURS, f"{text}: the download was cut by our restart"
    return outcome, text


def _poll(ctx: Ctx, record: DeviceProgress) -> tuple[Action, ...]:
    """Read /5/0 again when due. With an Observe running, notifications carry the news
    and a rare read only guards against a lost one (they are often non-confirmable)."""
    deadline = phase_deadline(ctx, record)
    if not ctx.delta.awake:
        return wait(record, "waiting for the device's next report", deadline).actions
    if ctx.delta.can_observe and not ctx.delta.observing:
        # Observations die with a registration (a reboot, a resumed download from a new
        # port) and with our restart: renew them now, rather than wait for the next poll.
        return (Observe(),)
    last = ctx.report.reported_at
    observing = ctx.delta.observing
    interval = ctx.config.poll_interval * (OBSERVED_POLL_FACTOR if observing else 1)
    stale = record.phase_started_at is not None and last < record.phase_started_at
    if (stale and not observing) or ctx.now >= last + interval:
        return (ReadState("polling the download"),)
    due = last + interval
    check = delivered_check(ctx, record)
    if check is not None:
        if ctx.now >= check:
            return (ReadState("package delivered; asking whether the device holds it"),)
        due = min(due, check)
    until = due if deadline is None else min(due, deadline)
    return wait(record, "waiting for the device's next report", until).actions


def delivered_check(ctx: Ctx, record: DeviceProgress) -> float | None:
    """When to ask a device that has its package whether it holds it: the first of the
    checks after the delivery (DELIVERED_CHECK, then doubling gaps up to the poll
    interval) that falls after its last report, or None (nothing delivered in this
    attempt, or all DELIVERED_CHECKS spent: the poll goes on, the deadline holds)."""
    delivered = ctx.delta.delivered_at
    started = record.phase_started_at
    if delivered is None or started is None or delivered < started:
        return None
    gap = min(DELIVERED_CHECK, ctx.config.poll_interval)
    due = delivered + gap
    for _ in range(DELIVERED_CHECKS):
        if due > ctx.report.reported_at:
            return due
        gap = min(gap * 2, ctx.config.poll_interval)
        due += gap
    return None
