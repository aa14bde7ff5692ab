"""Queue mode: requests for a sleeping device are held until its next Register/Update."""

from __future__ import annotations

import asyncio

import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code

from reconciler.errors import DeviceNotRegistered, RequestQueued
from reconciler.model.lwm2m import Path

FW_VERSION = Path(3, 0, 3)


async def _held(server, endpoint: str) -> None:
    """Yield to the loop until the request is parked in the queue (no wall-clock sleep)."""
    while server.queue.held(endpoint) == 0:
        await asyncio.sleep(0)


async def _send(device, server, code: Code, location: tuple[str, ...]) -> Message:
    uri = f"coap://127.0.0.1:{server.port}/{'/'.join(location)}"
    response: Message = await asyncio.wait_for(
        device.context.request(Message(code=code, uri=uri)).response, 5)
    return response


async def test_a_queue_mode_device_is_awake_only_in_the_window_after_it_spoke(
    server, clock, make_device, enroll
):
    device = await make_device()
    created = await enroll(device, "ep=q1&b=UQ")
    assert server.is_awake("q1")

    clock.now += 31
    assert not server.is_awake("q1")

    await _send(device, server, Code.POST, created.opt.location_path)
    assert server.is_awake("q1")


async def test_a_device_without_queue_mode_is_always_awake(server, clock, make_device, enroll):
    device = await make_device()
    await enroll(device, "ep=awake")
    clock.now += 3600

    assert server.is_awake("awake") and not server.is_awake("unknown")


async def test_a_request_for_a_sleeping_device_is_sent_after_its_next_update(
    server, clock, make_device, enroll
):
    device = await make_device()
    created = await enroll(device, "ep=q2&lwm2m=1.1&Q")
    clock.now += 31
    read = asyncio.create_task(server.client("q2").read(FW_VERSION, timeout=5))
    await _held(server, "q2")
    assert device.seen == [] and not read.done()

    await _send(device, server, Code.POST, created.opt.location_path)

    assert await read == {FW_VERSION: "1.0.0"}
    assert {seen[:2] for seen in device.seen} == {("GET", "/3/0/3")}


async def test_a_held_request_that_outlives_its_timeout_is_reported_queued(
    server, clock, make_device, enroll
):
    device = await make_device()
    await enroll(device, "ep=q3&b=UQ")
    clock.now += 31

    with pytest.raises(RequestQueued):
        await server.client("q3").read(FW_VERSION, timeout=0.05)
    assert device.seen == [] and server.queue.held("q3") == 0


async def test_a_held_request_ends_when_the_device_deregisters(
    server, clock, make_device, enroll
):
    device = await make_device()
    created = await enroll(device, "ep=q4&b=UQ")
    clock.now += 31
    read = asyncio.create_task(server.client("q4").read(FW_VERSION, timeout=5))
    await _held(server, "q4")

    await _send(device, server, Code.DELETE, created.opt.location_path)

    with pytest.raises(DeviceNotRegistered):
        await read
    assert device.seen == []


async def test_a_push_held_for_a_sleeping_device_that_deregisters_leaves_a_stop(
    server, clock, make_device, enroll
):
    # the engine resumes it when the device registers again (issue 8), rather than poll
    # a push that never started until the download deadline
    device = await make_device()
    created = await enroll(device, "ep=q5&b=UQ")
    clock.now += 31
    ended = asyncio.Event()
    server.pushes.subscribe(lambda endpoint: ended.set())
    server.client("q5").start_push(b"x" * 3000, timeout=5, package="img")
    await _held(server, "q5")

    await _send(device, server, Code.DELETE, created.opt.location_path)

    await asyncio.wait_for(ended.wait(), 5)
    stop = server.pushes.stop("q5")
    assert stop is not None and (stop.block, stop.blocks, stop.refused) == (0, 3, False)
    assert device.seen == []
