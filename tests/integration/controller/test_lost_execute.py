"""An Execute that did not take costs seconds, not update_timeout and a re-download
(issue 8 item 10).

The device is a scripted peer on a raw UDP socket: it takes the package URI and says
Downloaded at once, acknowledges the first Execute but does nothing (as if it never got
past its transport), then installs on the second and registers again running the new
version. The controller asks it (/5/0/3, /5/0/5, /3/0/3) shortly after the Execute,
sees it still holds the download with no failure, and executes again: one attempt, no
retry spent. (An Execute that gets no answer at all: test_silent_execute.py.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import controller_harness as harness
from aiocoap import Message
from aiocoap.numbers.codes import Code
from controller_harness import device_id, states, until
from scripted_device import START, ScriptedDevice

from reconciler.model.lwm2m import FW_PACKAGE_URI, FW_STATE, FW_UPDATE, FW_UPDATE_RESULT
from reconciler.model.lwm2m import Path as LwPath
from reconciler.model.status import UpdateState
from reconciler.store import open_reader


class IgnoresFirstExecute(ScriptedDevice):
    def __init__(self) -> None:
        super().__init__(START)
        self.executes: set[int] = set()  # message ids of the Execute exchanges it saw
        self.uris: list[bytes] = []

    def answer(self, message: Message, path: LwPath) -> Message | None:
        if path == FW_PACKAGE_URI and message.code == Code.PUT:
            self.uris.append(message.payload)
            self.values[FW_STATE] = 2 if message.payload else 0  # "downloaded" at once
        if path == FW_UPDATE and message.code == Code.POST:
            self.executes.add(message.mid)
            if len(self.executes) == 1:
                return super().answer(message, path)  # 2.04, and nothing happens
            self.values.update({LwPath(3, 0, 3): "2.0", FW_STATE: 0, FW_UPDATE_RESULT: 1})
            asyncio.get_running_loop().call_soon(self.register, harness.endpoint(0))  # rebooted
        return super().answer(message, path)


async def test_an_execute_that_did_not_take_is_sent_again_after_a_probe_not_the_timeout(
        tmp_path: Path) -> None:
    repo = harness.DesiredRepo(tmp_path / "repo", count=1, target="2.0")
    # Waiting out update_timeout would take 30 s; the probe comes 0.3 s after Execute.
    settings = harness.settings_for(repo, tmp_path / "s.db", update_timeout=30.0, probe_delay=0.3)
    async with harness.serving(settings) as running:
        loop = asyncio.get_running_loop()
        transport, device = await loop.create_datagram_endpoint(
            IgnoresFirstExecute, remote_addr=("127.0.0.1", running.coap_port))
        try:
            device.register(harness.endpoint(0))
            await asyncio.wait_for(device.registered.wait(), 5)
            ctl = running.controller
            await until(ctl, lambda: states(ctl)[device_id(0)] is UpdateState.CURRENT, 10)
        finally:
            transport.close()
    progress = ctl.decider.index.get(device_id(0))
    assert progress is not None
    assert (progress.attempts, progress.retries_left) == (1, settings.engine_config().max_retries)
    assert len(device.executes) == 2 and len([u for u in device.uris if u]) == 1
    reader = open_reader(tmp_path / "s.db")
    try:
        history = [e.message for e in reader.events(device_id(0))]
    finally:
        reader.close()
    assert any("Execute did not reach the device" in m for m in history), history
    assert not any("TimedOut" in m for m in history), history
