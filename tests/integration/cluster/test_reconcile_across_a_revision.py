"""A reconcile that awaited its device while a new revision was swapped in takes no step
until that revision's records are retargeted (issue 13: the three-node guards test
started the wave after the canaries this way under load).

Between the new snapshot and the end of its retarget, the rollout index still holds the
old target's records: the canary wave has no member of the new target, so it looks
finished, and a device of the next wave decided then passes its gate. A reconcile
started in that window waits (`Controller.reconcile_device`); one that was already
awaiting the device (here: a read the device answers late) woke in it and went on to
its next step, starting the device. One node on SQLite: the controller is the same on
every store.

Real parts throughout (git, the service, SQLite, the simulator for the canaries, a
scripted device on a raw UDP socket for the next wave); the test holds the window open
with a gate in front of the old snapshot's dismantling, the step between the swap and
the retarget, and it watches the device's reconciles return.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code
from controller_harness import (
    DesiredRepo,
    device_id,
    endpoint,
    fleet_of,
    serving,
    settings_for,
    specs,
    states,
    until,
)
from scripted_device import START, ScriptedDevice

import reconciler.controller.decide as decide_module
from reconciler.controller.workqueue import Requeue
from reconciler.model.lwm2m import FW_PACKAGE_URI
from reconciler.model.lwm2m import Path as LwPath
from reconciler.model.status import UpdateState

LATE = 2  # the device of the next wave


class LateReader(ScriptedDevice):
    """Holds its answers to reads while `holding`; `answer_held` sends them."""

    def __init__(self) -> None:
        super().__init__(START)
        self.holding = True
        self.held: list[tuple[Message, LwPath]] = []
        self.asked = asyncio.Event()  # a read is held
        self.offered = asyncio.Event()  # a package URI was written: the update started

    def answer(self, message: Message, path: LwPath) -> Message | None:
        if path == FW_PACKAGE_URI and message.code == Code.PUT:
            self.offered.set()
        if self.holding and message.code == Code.GET:
            if all(m.mid != message.mid for m, _ in self.held):  # not a retransmission
                self.held.append((message, path))
            self.asked.set()
            return None
        return super().answer(message, path)

    def answer_held(self) -> None:
        self.holding = False
        for message, path in self.held:
            reply = super().answer(message, path)
            assert reply is not None
            self.transport.sendto(reply.encode())


async def test_a_reconcile_that_wakes_between_the_swap_and_the_retarget_waits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=3, rollout={
        "waves": [{"name": "canary", "tags": {"ring": "canary"}}]},
        device_tags={0: {"ring": "canary"}, 1: {"ring": "canary"}})
    # a late answer is late, not lost; no resync: only the device's own reconciles run
    settings = settings_for(repo, tmp_path / "state.db", request_timeout=30.0,
                            resync_interval=3600.0)
    loop, swapped, gate = asyncio.get_running_loop(), asyncio.Event(), threading.Event()
    dismantle = decide_module._dismantle

    def gated(snapshots: Any) -> None:  # in a worker thread, right after the swap
        loop.call_soon_threadsafe(swapped.set)
        assert gate.wait(30)
        dismantle(snapshots)

    late, returned = device_id(LATE), asyncio.Queue[Requeue | None]()
    async with serving(settings) as running, \
            fleet_of(running, specs(LATE)) as fleet:
        ctl = running.controller
        reconcile = ctl.reconcile_device

        async def watched(key: str) -> Requeue | None:
            result = await reconcile(key)
            if key == late:
                returned.put_nowait(result)
            return result

        monkeypatch.setattr(ctl, "reconcile_device", watched)
        await fleet.wait_all(lambda d: d.registered, timeout=20)
        await until(ctl, lambda: all(states(ctl)[device_id(n)] is UpdateState.CURRENT
                                     for n in range(LATE)))
        transport, device = await loop.create_datagram_endpoint(
            LateReader, remote_addr=("127.0.0.1", running.coap_port))
        try:
            device.register(endpoint(LATE))
            await asyncio.wait_for(device.asked.wait(), 10)  # its reconcile awaits it
            monkeypatch.setattr(decide_module, "_dismantle", gated)
            try:
                await asyncio.to_thread(repo.set_target, "2.0")
                await asyncio.wait_for(swapped.wait(), 30)
                assert ctl.decider.retargeting
                device.answer_held()  # the reconcile wakes in the window
                # its reconcile returns, or (the fault) goes on to start the update
                ends = [asyncio.ensure_future(returned.get()),
                        asyncio.ensure_future(device.offered.wait())]
                done, _ = await asyncio.wait(ends, timeout=10,
                                             return_when=asyncio.FIRST_COMPLETED)
                for end in ends:
                    end.cancel()
                woke = ends[0].result() if ends[0] in done else None
                started, record = device.offered.is_set(), ctl.decider.index.get(late)
            finally:
                gate.set()
            # once retargeted, the device waits for the canaries, as it should
            if not started:
                await until(ctl, lambda: (r := ctl.decider.index.get(late)) is not None
                            and "waiting for wave canary" in r.message)
        finally:
            transport.close()
    assert not started, record  # no step taken in the window
    assert woke is not None and (record is None or not record.state.in_flight), record
