"""The decisions for a device that a maintenance window holds: a download that may not
start yet, and a device that holds its download while Execute waits for the window.

Neither wait costs the device anything: no retry is spent, and a device waiting to be
sent Execute has no deadline running until the window opens (`update_timeout` starts
with the Execute). Called by `phases.start` and `phases.downloading`.
"""

from __future__ import annotations

import sys

from reconciler.engine.decision import Ctx, Decision, moved, wait
from reconciler.engine.windows import closed_for
from reconciler.model.desired import WindowGate
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState as S


def download_held(ctx: Ctx, record: DeviceProgress) -> Decision | None:
    """None when a download may start now; else wait for the window, saying so."""
    closed = closed_for(ctx.delta.windows, WindowGate.DOWNLOAD, ctx.now)
    if closed is None:
        return None
    message = sys.intern(f"update to {ctx.target.version}: the download waits for "
                         f"{closed.describe()}")
    held = record if record.message == message else record.evolve(message=message,
                                                                   updated_at=ctx.now)
    return wait(held, message, closed.wake_at(ctx.now))


def execute_held(ctx: Ctx, record: DeviceProgress) -> Decision | None:
    """None when Execute may be sent now; else the device stays Downloaded until the
    window opens. Its deadline moves to the opening plus a download's budget: it only
    matters if the device drops the download meanwhile (then it times out after the
    window opened, not before)."""
    closed = closed_for(ctx.delta.windows, WindowGate.EXECUTE, ctx.now)
    if closed is None:
        return None
    message = sys.intern(f"Downloaded; Execute waits for {closed.describe()}")
    until = closed.wake_at(ctx.now)
    if record.state is S.DOWNLOADED and record.message == message:
        return wait(record, message, until)  # unchanged: no write on every re-check
    deadline = closed.opening.start + ctx.config.download_deadline(ctx.target)
    return moved(ctx, record, S.DOWNLOADED, message, wait(record, message, until).actions,
                 deadline=deadline)
