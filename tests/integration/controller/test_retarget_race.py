"""A revision's retarget records commit in a worker thread (`controller.held_writes`):
while a slice is being written, the loop may be asked to reconcile one of its devices,
and a newer record it wrote then would be overwritten by the slice's older one. The
slice's devices are held until it has committed, so that cannot happen.

Real parts throughout (git, the service, SQLite, the simulator over loopback CoAP); the
only thing the test adds is a gate in front of the slice's write, so the race window is
held open for as long as the test needs instead of a few milliseconds.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from controller_harness import (
    DesiredRepo,
    all_in,
    fleet_of,
    image_id,
    serving,
    settings_for,
    specs,
    until,
)

from reconciler.controller.held_writes import RetargetSlice
from reconciler.model.status import UpdateState

COUNT = 4


async def test_a_reconcile_while_a_slice_is_written_never_loses_the_newer_record(
        tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=COUNT)
    # No resync: only the held-back reconciles themselves may bring the devices on.
    settings = settings_for(repo, tmp_path / "state.db", resync_interval=3600.0)
    async with serving(settings) as running, fleet_of(running, specs(COUNT)) as fleet:
        ctl = running.controller
        await until(ctl, all_in(ctl, UpdateState.CURRENT))
        loop, writing, landed = asyncio.get_running_loop(), asyncio.Event(), asyncio.Event()
        gate, write = threading.Event(), ctl.decider.retargets.write

        def gated(batch: RetargetSlice) -> None:  # in the worker thread
            loop.call_soon_threadsafe(writing.set)
            assert gate.wait(30)
            write(batch)
            loop.call_soon_threadsafe(landed.set)

        ctl.decider.retargets.write = gated
        try:
            revision = await asyncio.to_thread(repo.set_target, "2.0")
            await asyncio.wait_for(writing.wait(), 30)
            devices = list(ctl.desired.devices)
            # The slice is decided (the loop's index has the new target), not written.
            # Every device is asked to reconcile now, as a Notify or an Update would;
            # the simulator's own Updates (every second) ask too.
            updates = {d.endpoint: d.updates for d in fleet.devices()}
            ctl.queue.add_all(devices)
            await ctl.queue.idle()
            await fleet.wait_all(lambda d: d.updates > updates[d.endpoint], timeout=10)
            await ctl.queue.idle()
            held = {d: ctl.decider.index.get(d) for d in devices}
            stored = {d: ctl.store.progress(d) for d in devices}
        finally:
            gate.set()
        await asyncio.wait_for(landed.wait(), 30)
        # What the store holds is what the loop decided last, for every device.
        assert {d: ctl.store.progress(d) for d in devices} == {
            d: ctl.decider.index.get(d) for d in devices}
        # Meanwhile the held devices were not decided for: nothing newer to lose.
        assert {(p.target_image_id, p.state) for p in held.values() if p} == {
            (image_id("2.0"), UpdateState.PENDING)}
        assert {p.target_image_id for p in stored.values() if p} == {image_id("1.0")}
        # The reconciles held back ran once the slice had landed.
        await fleet.wait_all(lambda d: d.version == "2.0", timeout=30)
        await until(ctl, lambda: ctl.desired.revision == revision
                    and all_in(ctl, UpdateState.CURRENT)())
    assert [d.executes for d in fleet.devices()] == [1] * COUNT
