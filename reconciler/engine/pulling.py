"""A pull download the device lost to the link (Update Result 4, "connection lost during
the download") offered again within the same attempt, as a push cut short by loss is
resumed (`pushing.py`), instead of spending a retry and waiting out the backoff.

Why: a device's own RFC 7252 timers give up on a Block2 GET after MAX_RETRANSMIT + 1
lost exchanges, and it then says 4. On a link that loses 15 % of datagrams each way
(28 % of exchanges) that ends about one 128-block download in five
(bench/README.md, lossy11: 25 of 125 attempts in one rollout of 100 devices). Each one
spent one of `max_retries` and waited 30, 60, 120 s for the next attempt, and four in a
row left the device UpdateFailed until someone raised a retry in git: the link's loss
made into the device's failure. Loss is neither the device's fault nor the image's.

Bounded as push resumptions are, with the same settings: the same offer (its URI, so a
device that keeps what it had can go on from its block) is written to /5/0/1 again
`push_resume_delay` after the device said 4 (doubled for each further loss), at most
`max_push_resumes` times an attempt and only while that falls before the phase
deadline; one more loss fails the attempt as before (a retry spent, the backoff). Never
a retry, never counted toward the failure threshold. A 4 after our own restart is not
this module's (`phases._download_result`: started again at once, no retry spent).
Called by `phases.downloading`.
"""

from __future__ import annotations

from reconciler.engine.actions import WriteUri
from reconciler.engine.decision import Ctx, Decision, moved, wait
from reconciler.engine.endings import phase_deadline
from reconciler.model.lwm2m import DeliveryMethod, UpdateResult
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState as S

LOST = "the device lost the connection during the download (Update Result 4)"


def reoffer(ctx: Ctx, record: DeviceProgress) -> Decision | None:
    """The next step after a device reported Update Result 4 in this attempt: wait, then
    offer the package again; None when the loss fails the attempt (not a pull, all
    resumptions spent, or no time left before the deadline)."""
    if ctx.report.update_result is not UpdateResult.CONNECTION_LOST:
        return None
    if ctx.report.delivery_method is DeliveryMethod.PUSH_ONLY:
        return None  # a push's stops are the LwM2M layer's to tell (`pushing.py`)
    if record.resumes >= ctx.config.max_push_resumes:
        return None
    losses = record.resumes + 1
    due = ctx.report.reported_at + ctx.config.push_resume_wait(losses)
    deadline = phase_deadline(ctx, record)
    if deadline is not None and due >= deadline:
        return None
    if ctx.now < due:
        return wait(record, f"{LOST}; offering it again", due)
    if not ctx.delta.awake:  # asleep (queue mode): its next Update wakes us
        return wait(record, f"{LOST}; offering it again when the device speaks", deadline)
    message = (f"attempt {record.attempts}: {LOST}; offering it again (interruption "
               f"{losses} of at most {ctx.config.max_push_resumes + 1}, no retry spent)")
    # phase_started_at moves to this offer: the device's 4 is older, so only what it
    # says after this write counts (phases.downloading's `seen`); the deadline stays.
    return moved(ctx, record, S.INITIALIZING, message,
                 (WriteUri(ctx.target.image_id, record.attempts),),
                 resumes=losses, phase_started_at=ctx.now)
