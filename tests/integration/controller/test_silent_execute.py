"""An Execute the device never answers is abandoned at our own timeout (issue 8, odd 1).

aiocoap would retransmit the unanswered Confirmable for up to 93 s and, one exchange per
device at a time (NSTART = 1), hold every later request to that device behind it. The
device here is a scripted peer on a raw UDP socket: it takes the package URI and says
Downloaded at once, answers every read, and never answers (not even an ACK) a POST to
/5/0/2. The Probe (/5/0/3, /5/0/5, /3/0/3) must reach it right after our Execute
timeout, no Execute may be retransmitted after that, and the device ends, within a
bounded number of requests, UpdateFailed for never acting on Execute.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import controller_harness as harness
from aiocoap import Message
from aiocoap.numbers.codes import Code
from controller_harness import device_id, states, until
from scripted_device import START, ScriptedDevice

from reconciler.model.lwm2m import FW_PACKAGE_URI, FW_STATE, FW_UPDATE
from reconciler.model.lwm2m import Path as LwPath
from reconciler.model.status import UpdateState

EXECUTE_TIMEOUT = 1.0
MARGIN = 1.5  # a loaded machine; aiocoap's first retransmission would come 2-3 s in


class SilentOnExecute(ScriptedDevice):
    def __init__(self) -> None:
        super().__init__(START)
        self.executes: list[tuple[float, int]] = []  # (monotonic time, message id)

    def answer(self, message: Message, path: LwPath) -> Message | None:
        if path == FW_PACKAGE_URI and message.code == Code.PUT:
            self.values[FW_STATE] = 2 if message.payload else 0  # "downloaded" at once
        if path == FW_UPDATE and message.code == Code.POST:
            self.executes.append((self.requests[-1][0], message.mid))
            return None  # silence: no ACK, no response
        return super().answer(message, path)


async def test_an_unanswered_execute_is_abandoned_and_the_probe_goes_out_at_our_timeout(
        tmp_path: Path) -> None:
    repo = harness.DesiredRepo(tmp_path / "repo", count=1, target="2.0")
    settings = harness.settings_for(repo, tmp_path / "s.db", update_timeout=60.0,
                                    probe_delay=0.2, execute_timeout=EXECUTE_TIMEOUT)
    async with harness.serving(settings) as running:
        loop = asyncio.get_running_loop()
        transport, device = await loop.create_datagram_endpoint(
            SilentOnExecute, remote_addr=("127.0.0.1", running.coap_port))
        try:
            device.register(harness.endpoint(0))
            await asyncio.wait_for(device.registered.wait(), 5)
            ctl = running.controller
            await until(ctl, lambda: states(ctl)[device_id(0)] is UpdateState.UPDATE_FAILED, 20)
        finally:
            transport.close()
    executes = device.executes
    first_copies: dict[int, float] = {}  # message id -> when its first copy arrived
    for sent, mid in executes:
        first_copies.setdefault(mid, sent)
    assert len(first_copies) == settings.engine_config().max_executes, executes
    # every Execute abandoned at our timeout: a copy may be retransmitted before it (our
    # timers follow the device's measured round trip, 0.5-0.75 s on loopback), never after
    for sent, mid in executes:
        assert sent - first_copies[mid] < EXECUTE_TIMEOUT + 0.5, executes
    for sent in first_copies.values():
        probe = next(t for t, code, path in device.requests
                     if t > sent and code == "GET" and path == "/5/0/3")
        assert probe - sent <= EXECUTE_TIMEOUT + MARGIN, (probe - sent, device.requests)
    span = device.requests[-1][0] - device.requests[0][0]
    assert len(device.requests) <= 60 and span < 60, device.requests
    progress = ctl.decider.index.get(device_id(0))
    assert progress is not None and "after Execute was sent" in progress.message
