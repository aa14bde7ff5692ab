"""How an attempt ends when it does not succeed: an Update Result failure (`fail`), a
failure the engine saw itself (`failed`: a push that kept being cut) or a deadline
(`timed_out`). Retried with backoff while the per-device, per-target budget
lasts, terminal otherwise. Called by the phases and by `machine` (device gone away).
"""

from __future__ import annotations

from reconciler.engine.decision import Ctx, Decision, moved, wait
from reconciler.engine.policy import Outcome
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState as S


def phase_deadline(ctx: Ctx, record: DeviceProgress) -> float | None:
    """The record's deadline, except that a phase begun before this server started gets
    its whole budget again from the start: the time we were down is not the device's."""
    deadline, began = record.deadline, record.phase_started_at
    if deadline is None or began is None or began >= ctx.delta.server_started:
        return deadline
    return max(deadline, ctx.delta.server_started + (deadline - began))


def fail(ctx: Ctx, record: DeviceProgress, outcome: Outcome, text: str) -> Decision:
    """An Update Result failure: retry with backoff, once for code 8, else terminal; a
    failure our own restart caused starts again soon without spending a retry."""
    code = int(ctx.report.update_result or 0)
    if outcome is Outcome.OURS:
        delay = ctx.config.restart_retry_delay
        # No relative delay in a stored message: the instant is `next_attempt_at`,
        # rendered where the message is shown (it would go stale here).
        msg = (f"attempt {record.attempts}: {text} (Update Result {code}); "
               "starting again, no retry spent")
        return moved(ctx, record, S.PENDING, msg, wait(record, msg, ctx.now + delay).actions,
                     next_attempt_at=ctx.now + delay, deadline=None)
    first_failure = record.retries_left >= ctx.config.max_retries
    retry = outcome is Outcome.RETRY or (outcome is Outcome.RETRY_ONCE and first_failure)
    if retry and record.retries_left > 0:
        delay = ctx.config.backoff(record.attempts)
        msg = f"attempt {record.attempts} failed: {text} (Update Result {code}); retry scheduled"
        return moved(ctx, record, S.PENDING, msg, wait(record, msg, ctx.now + delay).actions,
                     retries_left=record.retries_left - 1, next_attempt_at=ctx.now + delay,
                     deadline=None)
    why = "no retries left" if retry else "not retried for this image"
    msg = f"{text} (Update Result {code}); {why}"
    return moved(ctx, record, S.UPDATE_FAILED, msg, (), deadline=None, next_attempt_at=None)


def failed(ctx: Ctx, record: DeviceProgress, text: str) -> Decision:
    """An attempt that failed with no Update Result to blame: retried with backoff while
    the budget lasts (one retry spent), terminal otherwise."""
    return _retry_or_end(ctx, record, text, S.PENDING,
                         f"attempt {record.attempts} failed: {text}; retry scheduled",
                         clears_next_attempt=True)


def timed_out(ctx: Ctx, record: DeviceProgress, text: str) -> Decision:
    return _retry_or_end(ctx, record, text, S.TIMED_OUT, f"{text}; retry scheduled",
                         clears_next_attempt=False)


def _retry_or_end(ctx: Ctx, record: DeviceProgress, text: str, retrying: S,
                  scheduled: str, *, clears_next_attempt: bool) -> Decision:
    """One retry spent and the next attempt after the backoff (in state `retrying`, saying
    `scheduled`), or UpdateFailed when none is left."""
    if record.retries_left <= 0:
        msg = f"{text}; no retries left after {record.attempts} attempts"
        next_attempt = None if clears_next_attempt else record.next_attempt_at
        return moved(ctx, record, S.UPDATE_FAILED, msg, (), deadline=None,
                     next_attempt_at=next_attempt)
    delay = ctx.config.backoff(record.attempts)
    return moved(ctx, record, retrying, scheduled,
                 wait(record, scheduled, ctx.now + delay).actions,
                 retries_left=record.retries_left - 1, next_attempt_at=ctx.now + delay,
                 deadline=None)
