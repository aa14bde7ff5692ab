"""What devices make the controller warn about is rate-limited (issue 8 item 7, odd 5): a
fleet of registered devices that never answer makes every reconcile fail, and each
failure streak is a warning; at most a budget of them a minute reaches the log, and the
rest are counted in one summary line."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import controller_harness as harness
import pytest
from aiocoap import Message
from scripted_device import ScriptedDevice

from reconciler.lwm2m.logbudget import BURST
from reconciler.model.lwm2m import Path as LwPath

COUNT = 30  # devices; each fails at once, so their first warnings alone exceed BURST


class Silent(ScriptedDevice):
    def answer(self, message: Message, path: LwPath) -> Message | None:
        return None


class Seen(logging.Filter):
    """Counts the warnings a logger is asked to emit, before any budget drops them."""

    def __init__(self, enough: int) -> None:
        super().__init__()
        self.warnings, self.enough = 0, enough
        self.reached = asyncio.Event()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING and "suppressed" not in record.getMessage():
            self.warnings += 1
            if self.warnings >= self.enough:
                self.reached.set()
        return True


async def test_warnings_about_failing_devices_are_capped_and_the_rest_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    queue_log = logging.getLogger("reconciler.queue")
    seen = Seen(BURST + COUNT)
    queue_log.addFilter(seen)  # before the controller's budget: sees every warning
    repo = harness.DesiredRepo(tmp_path / "repo", count=COUNT, target="2.0")
    settings = harness.settings_for(repo, tmp_path / "s.db", request_timeout=0.3)
    loop = asyncio.get_running_loop()
    transports = []
    try:
        async with harness.serving(settings) as running:
            for n in range(COUNT):
                transport, device = await loop.create_datagram_endpoint(
                    lambda: Silent({}), remote_addr=("127.0.0.1", running.coap_port))
                transports.append(transport)
                device.register(harness.endpoint(n))
            await asyncio.wait_for(seen.reached.wait(), 30)
    finally:
        queue_log.removeFilter(seen)
        for transport in transports:
            transport.close()
    logged = [r for r in caplog.records
              if r.name == "reconciler.queue" and r.levelno >= logging.WARNING]
    told = [r for r in logged if "suppressed" in r.getMessage()]
    assert len(logged) - len(told) <= BURST < seen.warnings
    assert told and sum(int(r.getMessage().split()[0]) for r in told) == (
        seen.warnings - (len(logged) - len(told)))
