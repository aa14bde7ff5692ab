"""A device that does not follow Object 5 ends failed, saying what it did wrong, after a
bounded number of requests (issue 8 item 3).

The device is a scripted peer on a raw UDP socket, not our simulator: its Object 5
starts in state 1 (Downloading), it answers every write with 2.04 and ignores it, and an
Execute changes nothing (the skeleton firmware object of a widely used open-source
client does exactly this). Against it the controller used to loop at ~1,160 requests
per second while the API showed Pending.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import controller_harness as harness
import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code
from controller_harness import device_id, states, until
from scripted_device import ScriptedDevice

from reconciler.lwm2m.codecs import Value
from reconciler.model.lwm2m import Path as LwPath
from reconciler.model.status import UpdateState
from reconciler.store import open_reader

VALUES: dict[LwPath, Value] = {
    LwPath(3, 0, 0): "skeleton", LwPath(3, 0, 3): "1.0",
    LwPath(5, 0, 1): "", LwPath(5, 0, 3): 1, LwPath(5, 0, 5): 0, LwPath(5, 0, 9): 2}


def most_in_any_window(times: list[float], window: float) -> int:
    return max((sum(1 for t in times if start <= t < start + window) for start in times),
               default=0)


async def test_a_device_that_ignores_object_5_ends_failed_within_bounded_requests(
        tmp_path: Path) -> None:
    repo = harness.DesiredRepo(tmp_path / "repo", count=1, target="2.0")
    settings = harness.settings_for(repo, tmp_path / "s.db", reset_delay=0.2)
    async with harness.serving(settings) as running:
        loop = asyncio.get_running_loop()
        transport, device = await loop.create_datagram_endpoint(
            lambda: ScriptedDevice(VALUES), remote_addr=("127.0.0.1", running.coap_port))
        try:
            device.register(harness.endpoint(0))
            await asyncio.wait_for(device.registered.wait(), 5)
            ctl = running.controller
            await until(ctl, lambda: states(ctl)[device_id(0)] is UpdateState.UPDATE_FAILED,
                        20)
            done = len(device.requests)
            # A resync looks at every device again: a terminal one gets no request.
            ctl.queue.add(device_id(0))
            await ctl.queue.idle()
        finally:
            transport.close()
    progress = ctl.decider.index.get(device_id(0))
    assert progress is not None and progress.state is UpdateState.UPDATE_FAILED
    assert progress.message == ("/5/0/3 stayed 1 after the URI was cleared 3 times: "
                                "the device does not follow Object 5")
    writes = [r for r in device.requests if r[1:] == ("PUT", "/5/0/1")]
    assert len(writes) == 3  # the three resets, never a URI
    assert len(device.requests) == done <= 20
    # resets 0.2 s, 0.4 s, 0.8 s apart: never a burst (it was ~1,160 a second)
    assert most_in_any_window([t for t, _, _ in device.requests], 0.1) <= 6


class RefusesEverything(ScriptedDevice):
    """Registers, then answers every request with 4.04; `refused` is set after `count`."""

    def __init__(self, count: int) -> None:
        super().__init__(VALUES)
        self.count, self.refused = count, asyncio.Event()

    def answer(self, message: Message, path: LwPath) -> Message | None:
        if len(self.requests) >= self.count:
            self.refused.set()
        return self.reply(message, Code.NOT_FOUND)


async def test_a_device_that_refuses_every_request_costs_one_history_line_and_few_warnings(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    repo = harness.DesiredRepo(tmp_path / "repo", count=1, target="2.0")
    settings = harness.settings_for(repo, tmp_path / "s.db", error_backoff=0.02,
                                    error_backoff_max=0.05)
    caplog.set_level(logging.INFO, logger="reconciler.queue")
    async with harness.serving(settings) as running:
        loop = asyncio.get_running_loop()
        transport, device = await loop.create_datagram_endpoint(
            lambda: RefusesEverything(40), remote_addr=("127.0.0.1", running.coap_port))
        try:
            device.register(harness.endpoint(0))
            await asyncio.wait_for(device.refused.wait(), 10)  # ~20 failed reconciles
        finally:
            transport.close()
    reader = open_reader(tmp_path / "s.db")
    try:
        errors = [e for e in reader.events(device_id(0)) if e.kind == "error"]
    finally:
        reader.close()
    assert len(errors) == 1 and "DeviceRequestFailed" in errors[0].message
    warned = [r for r in caplog.records if "reconcile failed" in r.getMessage()
              and r.levelno == logging.WARNING]
    assert 3 <= len(warned) <= 6  # the 1st, 2nd, 4th, 8th, 16th ... of the streak
    # and the queue stops at once under that load (its timer used to lose the cancel)
    assert not any("did not stop" in r.getMessage() for r in caplog.records)
