"""A lost Downloaded notification costs about a second, not the observed poll (issue 8
item 10).

The device is a scripted peer on a raw UDP socket: it takes the package URI, accepts the
Observe of /5/0/3 and /5/0/5 (so the server relies on notifications and reads only every
4 poll intervals, 80 s here), downloads the package with Block2 GETs from a socket of
its own, then holds it (/5/0/3 = 2) without a word: the notification that would have
said so was lost. The server served the last block, so it knows the device has the
package: it asks 1 s later, finds Downloaded and executes. Without that it would wait
for the poll and the test would time out.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import controller_harness as harness
from aiocoap import Message
from aiocoap.numbers.codes import Code
from controller_harness import device_id, states, until
from scripted_device import START, ScriptedDevice

from reconciler.engine.phases import DELIVERED_CHECK
from reconciler.model.lwm2m import FW_STATE, FW_UPDATE, FW_UPDATE_RESULT
from reconciler.model.lwm2m import Path as LwPath
from reconciler.model.status import UpdateState


class DownloadsQuietly(ScriptedDevice):
    def __init__(self) -> None:
        super().__init__(START)
        self.executed_at: float | None = None

    def answer(self, message: Message, path: LwPath) -> Message | None:
        self.pull(message, path)  # Downloaded, and the notification of it is lost
        if path == FW_UPDATE and message.code == Code.POST:
            self.executed_at = time.monotonic()
            self.values.update({LwPath(3, 0, 3): "2.0", FW_STATE: 0, FW_UPDATE_RESULT: 1})
            asyncio.get_running_loop().call_soon(self.register, harness.endpoint(0))
        response = super().answer(message, path)
        if response is not None and message.opt.observe == 0:
            response.opt.observe = 1  # an active observation: news would be notified
        return response


async def test_a_lost_downloaded_notification_is_made_up_for_within_the_short_backoff(
        tmp_path: Path) -> None:
    repo = harness.DesiredRepo(tmp_path / "repo", count=1, target="2.0")
    settings = harness.settings_for(repo, tmp_path / "s.db", poll_interval=20.0,
                                    min_download_time=60.0, update_timeout=60.0)
    async with harness.serving(settings) as running:
        loop = asyncio.get_running_loop()
        transport, device = await loop.create_datagram_endpoint(
            DownloadsQuietly, remote_addr=("127.0.0.1", running.coap_port))
        try:
            device.register(harness.endpoint(0))
            await asyncio.wait_for(device.registered.wait(), 5)
            ctl = running.controller
            await until(ctl, lambda: states(ctl)[device_id(0)] is UpdateState.CURRENT, 15)
            await asyncio.gather(*device.downloads)
        finally:
            transport.close()
    assert device.downloaded_at is not None and device.executed_at is not None
    # the first check 1 s after the last block, the Execute right after its answer;
    # the observed poll would have come 80 s after the last report
    assert DELIVERED_CHECK - 0.1 <= device.executed_at - device.downloaded_at < DELIVERED_CHECK + 2
    after = [(code, path) for at, code, path in device.requests
             if device.downloaded_at <= at <= device.executed_at]
    assert after.count(("GET", "/5/0")) == 1, after  # one check, then Execute
