"""A queue-mode device listens only in the window after it speaks, then sleeps."""

from __future__ import annotations

from typing import Any

import aiocoap
import pytest

from reconciler.simulator import DeviceSpec, Timing
from reconciler.simulator.coap import Reliability

QUEUE = Timing(queue_window=1.0, update_every=60.0, retry_delay=0.2,
               reliability=Reliability(ack_timeout=0.3, max_retransmit=2))


async def test_a_queue_mode_device_sleeps_until_its_next_update(
        server: Any, launch: Any) -> None:
    fleet = await launch(DeviceSpec("q", queue_mode=True), timing=QUEUE)
    device = fleet.device("q")
    awake = await server.request("q", aiocoap.GET, "/3/0/3")
    assert awake.code == aiocoap.CONTENT
    await device.wait_for(lambda: not device.awake, timeout=5)
    with pytest.raises(aiocoap.error.ConRetransmitsExceeded):
        await server.request("q", aiocoap.GET, "/3/0/3", impatient=True)
    device.trigger_update()  # its own timer would do this after update_every
    await server.wait_event("update", "q")
    again = await server.request("q", aiocoap.GET, "/3/0/3")
    assert again.code == aiocoap.CONTENT

