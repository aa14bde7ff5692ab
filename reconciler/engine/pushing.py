"""Following a push (push delivery: /5/0/9 = 1) and resuming one that loss, silence or
our own restart cut short, instead of waiting out the download deadline.

A push runs as the LwM2M layer's operation (`Delta.pushing`): the engine waits for its
end, which comes as a trigger, and sends nothing meanwhile.

The LwM2M layer records how a push ended early (`Delta.push_stop`: when, at which
block): loss, silence, or the device itself (it registered again, from a new address
or after a reboot, moved, de-registered, or its registration expired: the server cuts
the push at once). A device away when the resumption is due (asleep in queue mode, not
registered) is waited for: its Register or Update is the trigger, the phase deadline the
bound. A push our restart cut leaves no such record, only a `pushed_at` older than this
server. Either way the engine asks for the push again (`PushPackage(resume=True)`): after
a stop, `push_resume_delay` later, doubled for each further resumption; after our
restart, once a read of the device's firmware state since the restart says it still
downloads (one that took the last block just before the kill is Downloaded: it goes on to
Execute). The wire layer continues after the last block the device acknowledged
(after our restart: the position the store kept, at most a few dozen blocks behind; from
block 0 when it knows none, when the image's id or digest differs, or when the device
lost its partial transfer). Bounded: at most `max_push_resumes` resumptions an attempt, all within
the phase deadline; one more stop ends the attempt as a failed download does (a retry
spent, saying where it stopped), as does a push the device refused (an error code). A
resumption is never a retry and never counts toward
the failure threshold: loss is neither the device's fault nor the image's, and a restart
of ours even less. Called by `phases.downloading`.
"""

from __future__ import annotations

from reconciler.engine.actions import PushPackage, ReadState
from reconciler.engine.decision import Ctx, Decision, wait
from reconciler.engine.endings import failed, phase_deadline
from reconciler.model.lwm2m import DeliveryMethod
from reconciler.model.observed import DeviceProgress, PushStop


def resume(ctx: Ctx, record: DeviceProgress) -> Decision | None:
    """The next step of a push: waiting while it runs, resuming it when it was cut
    short; None when there is none (not a push, the package arrived, or it ended in a
    way resuming cannot help)."""
    if ctx.report.delivery_method is not DeliveryMethod.PUSH_ONLY:
        return None
    if ctx.delta.pushing:  # its end is a trigger (a delivery or a stop): no polling
        return wait(record, "pushing the package", phase_deadline(ctx, record))
    pushed = record.pushed_at if record.pushed_at is not None else record.phase_started_at
    if pushed is None:
        return None
    delivered = ctx.delta.delivered_at
    if delivered is not None and delivered >= pushed:
        return None
    stop = ctx.delta.push_stop
    if stop is not None and stop.at >= pushed:
        return _after_stop(ctx, record, stop)
    if pushed < ctx.delta.server_started:
        if ctx.report.reported_at < ctx.delta.server_started:
            # What the device holds now decides, not the last report before the restart:
            # a push whose last block went out just before the kill left it Downloaded
            # (it refuses another push: 4.05, a retry spent), not Downloading.
            if not ctx.delta.awake:
                return wait(record, "our restart cut the push; waiting for the device to "
                                    "speak", phase_deadline(ctx, record))
            return Decision((ReadState("our restart cut the push; reading the firmware "
                                       "state before pushing again"),), record)
        return _push(ctx, record, record.resumes,
                     f"attempt {record.attempts}: the push was cut by our restart; pushing "
                     f"again (no retry spent)")
    return None


def _after_stop(ctx: Ctx, record: DeviceProgress, stop: PushStop) -> Decision:
    where = f"block {stop.block} of {stop.blocks}"
    if stop.refused:
        return failed(ctx, record, f"the device refused the push at {where}: {stop.reason}")
    interruptions = record.resumes + 1
    if record.resumes >= ctx.config.max_push_resumes:
        return failed(ctx, record, f"the push stopped at {where} after {interruptions} "
                                   f"interruption{'s' if interruptions > 1 else ''}")
    due = stop.at + ctx.config.push_resume_wait(interruptions)
    deadline = phase_deadline(ctx, record)
    if ctx.now < due:
        return wait(record, f"the push stopped at {where}; resuming it",
                    due if deadline is None else min(due, deadline))
    if not ctx.delta.awake:  # asleep (queue mode): its next Update wakes us
        return wait(record, f"the push stopped at {where}; resuming it when the device "
                            f"speaks", deadline)
    return _push(ctx, record, interruptions,
                 f"attempt {record.attempts}: resuming the push at {where} (interruption "
                 f"{interruptions} of at most {ctx.config.max_push_resumes + 1})")


def _push(ctx: Ctx, record: DeviceProgress, resumes: int, message: str) -> Decision:
    deadline = phase_deadline(ctx, record)
    budget = (ctx.config.download_deadline(ctx.target) if deadline is None
              else deadline - ctx.now)
    action = PushPackage(ctx.target.image_id, record.attempts, budget, resume=True,
                         digest=ctx.target.sha256)
    new = record.evolve(resumes=resumes, pushed_at=ctx.now, message=message,
                        updated_at=ctx.now)
    return Decision((action,), new, (ctx.event(message, "action"),))
