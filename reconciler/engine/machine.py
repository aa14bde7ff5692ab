"""`decide()`: the Object 5 update state machine, as a pure function of one `Delta`.

Given what separates a device from its target, the controller's progress record for it,
the time and the collection's rollout gate, it returns the next actions (data), the
progress record to persist *before* those actions run, and the events to append. The
controller calls it in a loop: execute, observe, decide again, until it returns a `Wait` or
a `NoOp`. The decision table, top to bottom (first match wins); the last three rows are
`PHASE`, the lookup `_decide` runs by the record's state:

| situation                                   | result                                  |
| ------------------------------------------- | --------------------------------------- |
| disabled, unknown device or no target       | NoOp, progress untouched (hands off)    |
| target changed                              | fresh record: Pending (Current if on it)|
| retry counter raised in git, device failed  | Pending with a fresh retry budget       |
| not registered                              | Wait for Register                       |
| report older than the registration          | ReadState (Verify after an Execute)     |
| reports the target version                  | Current, NoOp (never touched)           |
| Current, or drifted, and off the target     | `drift.notice`: Drifted; `report`: NoOp |
| UpdateFailed / Reverted                     | `hold` until the target changes         |
| Pending / TimedOut                          | `phases.start`: backoff, gate, download |
|                                             | window, read an unknown Object 5, reset,|
|                                             | write the URI (or push)                 |
| Initializing / Downloading / Downloaded     | `phases.downloading`: Execute           |
|                                             | (`install.execute`) once Downloaded and |
|                                             | its Execute window is open (`windowed`) |
| Updating / Completed                        | `install.updating`: probe with backoff, |
|                                             | Execute again if it never arrived,      |
|                                             | Reverted, timeout                       |
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace

from reconciler.engine import drift, install, phases
from reconciler.engine.actions import NoOp, ReadState, Verify
from reconciler.engine.decision import Ctx, Decision, move, moved, wait
from reconciler.engine.delta import Delta
from reconciler.engine.endings import phase_deadline, timed_out
from reconciler.engine.policy import OPEN, EngineConfig, Gate
from reconciler.model.observed import DeviceEvent, DeviceProgress
from reconciler.model.status import UpdateState as S

DEFAULT_CONFIG = EngineConfig()


def decide(
    delta: Delta,
    progress: DeviceProgress | None,
    now: float,
    gate: Gate = OPEN,
    config: EngineConfig = DEFAULT_CONFIG,
) -> Decision:
    """The next step for one device; see the module's table."""
    if not delta.managed or delta.target is None:
        return Decision((NoOp(_hands_off_reason(delta)),), progress)
    ctx = Ctx(delta, delta.target, now, gate, config)
    record, events = _record_for_target(ctx, progress)
    step = _decide(ctx, record)
    return replace(step, events=events + step.events)


def retarget(
    delta: Delta, progress: DeviceProgress | None, now: float,
    config: EngineConfig = DEFAULT_CONFIG,
) -> Decision:
    """Only acknowledge the device's target: a fresh record when it changed (Pending, or
    Current when the device already reports it), never an action. The controller runs
    this over every device a new revision affects, so the change shows at once."""
    if not delta.managed or delta.target is None:
        return Decision((), progress)
    ctx = Ctx(delta, delta.target, now, OPEN, config)
    record, events = _record_for_target(ctx, progress)
    return Decision((), record, events)


def _hands_off_reason(delta: Delta) -> str:
    if delta.device is None:
        return "device not in the desired state"
    if not delta.managed:
        return "firmware management disabled for the collection"
    return "no target firmware"


def _record_for_target(
    ctx: Ctx, progress: DeviceProgress | None
) -> tuple[DeviceProgress, tuple[DeviceEvent, ...]]:
    """Keep the record while the target holds; a new target starts a fresh one."""
    target, retry = ctx.target, ctx.delta.retry
    if progress is not None and progress.target_image_id == target.image_id:
        if progress.retry == retry:
            return progress, ()
        if retry > progress.retry and progress.state in RETRIED_IN_GIT:
            return _retried(ctx, progress)
        return progress.evolve(retry=retry), ()  # seen: a restart must not retry again
    on_it = ctx.delta.on_target and ctx.delta.report_fresh
    record = DeviceProgress(
        device_id=ctx.delta.device_id,
        target_image_id=target.image_id,
        state=S.CURRENT if on_it else S.PENDING,
        # Interned: a revision gives 100,000 records the same message.
        message=sys.intern(f"running {target.version}" if on_it
                           else f"update to {target.version} pending"),
        retries_left=ctx.config.max_retries,
        updated_at=ctx.now,
        retry=retry,
    )
    return record, (ctx.event(f"target set to {target.version} ({target.image_id})", "target"),)


# What a raised retry counter gives a fresh retry budget (the Kubernetes `rollout restart`
# idea): the failures that otherwise hold until the target changes, and a timeout.
RETRIED_IN_GIT = frozenset({S.UPDATE_FAILED, S.REVERTED, S.TIMED_OUT})


def _retried(ctx: Ctx, progress: DeviceProgress) -> tuple[
        DeviceProgress, tuple[DeviceEvent, ...]]:
    """Pending again with the whole retry budget; the attempt count goes on."""
    message = sys.intern(f"retry {ctx.delta.retry} requested in git: update to "
                         f"{ctx.target.version} pending")
    record = progress.evolve(
        state=S.PENDING, message=message, retries_left=ctx.config.max_retries,
        retry=ctx.delta.retry, updated_at=ctx.now, phase_started_at=None, deadline=None,
        next_attempt_at=None, executed_at=None, resets=0, probes=0, executes=0, resumes=0,
        pushed_at=None)
    return record, (ctx.event(f"{progress.state.value} -> {S.PENDING.value}: {message}"),)


def _decide(ctx: Ctx, record: DeviceProgress) -> Decision:
    delta = ctx.delta
    if delta.registration is None:
        # Only an update under way has a deadline to keep while the device is away.
        deadline = phase_deadline(ctx, record) if record.state.in_flight else None
        if deadline is not None and ctx.now >= deadline:
            return timed_out(ctx, record, "device went away during the update")
        return wait(record, "device not registered; waiting for it to register", deadline)
    if not delta.report_fresh:
        return _read(ctx, record)
    if delta.on_target:
        return _current(ctx, record)
    events: tuple[DeviceEvent, ...] = ()
    if record.state is S.CURRENT or record.drift is not None:
        record, events, reported = drift.notice(ctx, record)
        if reported is not None:
            return reported
    step = PHASE[record.state](ctx, record)
    return replace(step, events=events + step.events) if events else step


HOLDS = "holds until the target changes or a retry is raised in git"


def hold(ctx: Ctx, record: DeviceProgress) -> Decision:
    """UpdateFailed and Reverted: nothing more for this target (`RETRIED_IN_GIT`)."""
    return Decision((NoOp(f"{record.state.value} {HOLDS}"),), record)


# The phase that decides for a device not yet on its target, by its record's state.
PHASE: dict[S, Callable[[Ctx, DeviceProgress], Decision]] = {
    S.PENDING: phases.start,
    S.TIMED_OUT: phases.start,
    S.CURRENT: phases.start,  # not reached: drift.notice moves it to Pending first
    S.INITIALIZING: phases.downloading,
    S.DOWNLOADING: phases.downloading,
    S.DOWNLOADED: phases.downloading,
    S.UPDATING: install.updating,
    S.COMPLETED: install.updating,
    S.UPDATE_FAILED: hold,
    S.REVERTED: hold,
}


def _read(ctx: Ctx, record: DeviceProgress) -> Decision:
    """The device (re)registered since we last read it: read before deciding anything."""
    assert ctx.delta.registration is not None
    executed = record.executed_at
    since_execute = (executed is not None and record.state in (S.UPDATING, S.COMPLETED)
                     and ctx.delta.registration.registered_at > executed)
    if not ctx.delta.awake:
        return wait(record, "queue mode: waiting for the device to speak")
    if not since_execute:
        return Decision((ReadState("device registered; reading its firmware state"),), record)
    # Not "restarted": our own restart also makes devices register again. What it runs
    # and its /5/0/3 tell (install.updating decides from the read).
    msg = (f"device registered again after the Execute; reading whether it runs "
           f"{ctx.target.version}")
    new, events = move(ctx, record, S.COMPLETED, msg)
    return Decision((Verify(ctx.target.image_id, ctx.target.version),), new, events)


def _current(ctx: Ctx, record: DeviceProgress) -> Decision:
    message = f"running {ctx.target.version}"
    done = (NoOp("device runs its target"),)
    if record.state is S.CURRENT and record.message == message and record.deadline is None:
        return Decision(done, record)  # unchanged: no write on every resync
    return moved(ctx, record, S.CURRENT, message, done, deadline=None, next_attempt_at=None,
                 drift=None)
