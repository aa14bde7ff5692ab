"""A node that lost a device never executes on it (issue 13, fencing).

A scripted device takes the package URI and says Downloaded at once; as the URI arrives,
a Register of the same device at another node sharing the store takes it over (written
through the store as that node would). Every progress write of this node about the
device is fenced by its ownership at its epoch, above all the record before Execute: the
store refuses it, and the device gets no Execute and no request at all from this node
after that, over more than a resync interval (in which every device is looked at again).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import controller_harness as harness
from aiocoap import Message
from aiocoap.numbers.codes import Code
from scripted_device import START, ScriptedDevice

from reconciler.controller.core import Controller
from reconciler.model.lwm2m import (
    FW_PACKAGE_URI,
    FW_STATE,
    FW_UPDATE,
    NO_FORMATS,
    Registration,
    RegistrationEvent,
    RegistrationEventKind,
)
from reconciler.model.lwm2m import Path as LwPath
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState


class TakenOverOnDownload(ScriptedDevice):
    def __init__(self) -> None:
        super().__init__(START)
        self.controller: Controller | None = None
        self.taken = asyncio.Event()

    def answer(self, message: Message, path: LwPath) -> Message | None:
        if path == FW_PACKAGE_URI and message.code == Code.PUT and message.payload:
            self.values[FW_STATE] = 2  # Downloaded at once
            assert self.controller is not None
            reg = self.controller.server.registration(harness.endpoint(0))
            assert reg is not None
            # The device registers at node-b (behind the balancer) as it downloads.
            self.controller.store.claim_registration(reg, NO_FORMATS, "node-b")
            self.taken.set()
        return super().answer(message, path)


async def test_a_node_that_lost_a_device_to_a_register_elsewhere_never_executes_on_it(
        tmp_path: Path) -> None:
    repo = harness.DesiredRepo(tmp_path / "repo", count=1, target="2.0")
    settings = harness.settings_for(repo, tmp_path / "s.db", node_id="node-a",
                                    resync_interval=1.0)
    async with harness.serving(settings) as running:
        ctl = running.controller
        transport, device = await asyncio.get_running_loop().create_datagram_endpoint(
            TakenOverOnDownload, remote_addr=("127.0.0.1", running.coap_port))
        device.controller = ctl
        try:
            device.register(harness.endpoint(0))
            await asyncio.wait_for(device.taken.wait(), 10)
            await harness.until(ctl, lambda: not ctl.ownership.owns(harness.endpoint(0)), 10)
            seen = len(device.requests)
            # Absence over time: every device is looked at again each resync interval.
            await asyncio.sleep(2.5 * settings.controller.resync_interval)
        finally:
            transport.close()
    assert not any(path == str(FW_UPDATE) for _, _, path in device.requests)
    assert len(device.requests) == seen
    progress = ctl.decider.index.get(harness.device_id(0))
    assert progress is None or progress.executed_at is None


async def test_a_device_that_registers_here_from_another_node_resumes_that_nodes_record(
        tmp_path: Path) -> None:
    """What the other node recorded while it owned the device (an attempt under way) is
    what this node decides from once the device registers here, not its own old view."""
    repo = harness.DesiredRepo(tmp_path / "repo", count=1, target="1.0")
    settings = harness.settings_for(repo, tmp_path / "s.db", node_id="node-a")
    async with harness.serving(settings) as running:
        ctl = running.controller
        reg = Registration("r1", harness.endpoint(0), "127.0.0.1", 9, 300, "1.1", "U",
                           False, ("/3/0", "/5/0"), 100.0, 100.0)
        ctl.store.claim_registration(reg, NO_FORMATS, "node-b")  # node-b's Register
        theirs = DeviceProgress(harness.device_id(0), harness.image_id("2.0"),
                                UpdateState.DOWNLOADING, "downloading", attempts=1,
                                updated_at=100.0)
        ctl.store.put_progress(theirs)  # what node-b wrote while it owned the device
        assert ctl.decider.index.get(harness.device_id(0)) != theirs
        indexed: list[DeviceProgress | None] = []
        reloaded = ctl.decider.reloaded

        def seen(device_id: str, progress: DeviceProgress | None) -> bool:
            done = reloaded(device_id, progress)
            indexed.append(ctl.decider.index.get(device_id))  # before its reconcile
            return done

        ctl.decider.reloaded = seen  # type: ignore[method-assign]
        ctl.on_registration(RegistrationEvent(RegistrationEventKind.REGISTERED, reg))
        # read back in a batch, off the event loop; its reconcile waits until then
        assert await ctl.reconcile_device(harness.device_id(0)) is None
        await ctl.reloads.settled()
        assert indexed == [theirs]
        assert ctl.ownership.owns(harness.endpoint(0))
