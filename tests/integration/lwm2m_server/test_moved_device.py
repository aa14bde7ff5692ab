"""A device that registers again from a new address (a reboot into a new socket) while a
request of ours waits at its old one: the wait ends at once with `DeviceMoved` instead
of running out its retransmissions, the next request goes to the new address, and the
round trip learnt at the old address holds there. Real server, scripted devices on raw
UDP sockets (`ScriptedDevice`), every copy recorded on the device's side."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from reconciler.errors import DeviceMoved
from reconciler.lwm2m.rto import MIN_RTO
from reconciler.lwm2m.server import Lwm2mServer

from .test_adaptive_retransmission import FW_VERSION, ScriptedDevice

Opener = Callable[[], Awaitable[ScriptedDevice]]


@pytest.fixture
async def socket_of(server: Lwm2mServer) -> AsyncIterator[Opener]:
    """Opens scripted devices on fresh loopback sockets (each one a new address)."""
    loop = asyncio.get_running_loop()
    transports: list[asyncio.BaseTransport] = []

    async def open_one() -> ScriptedDevice:
        transport, protocol = await loop.create_datagram_endpoint(
            ScriptedDevice, local_addr=("127.0.0.1", 0),
            remote_addr=("127.0.0.1", server.port))
        transports.append(transport)
        return protocol

    try:
        yield open_one
    finally:
        for transport in transports:
            transport.close()


async def test_a_read_waiting_at_the_old_address_ends_when_the_device_registers_anew(
        server: Lwm2mServer, socket_of: Opener) -> None:
    old = await socket_of()
    await old.register("rebooting")
    client = server.client("rebooting")
    old.silent = True  # the old socket is gone: nothing answers there any more
    read = asyncio.create_task(client.read(FW_VERSION, timeout=30))
    await asyncio.wait_for(old.arrived.get(), 5)
    new = await socket_of()
    loop = asyncio.get_running_loop()
    registered = loop.time()
    await new.register("rebooting")
    with pytest.raises(DeviceMoved):
        await asyncio.wait_for(read, 5)
    # at once, not after the read's retransmissions (2 s and more) or its 30 s deadline
    assert loop.time() - registered < 0.5
    assert len(server.departures) == 0  # nothing left watched
    assert [len(copies) for copies in old.copies.values()] == [1]
    assert await client.read(FW_VERSION, timeout=5) == {FW_VERSION: "1.0"}
    assert len(new.copies) == 1  # the next read went to the new address


async def test_a_request_to_a_device_that_did_not_move_is_not_cut(
        server: Lwm2mServer, socket_of: Opener) -> None:
    """Another device's Register changes nothing for this one's request, which gets its
    answer after a retransmission as before."""
    device = await socket_of()
    await device.register("staying")
    device.drop_next = True
    read = asyncio.create_task(server.client("staying").read(FW_VERSION, timeout=10))
    await asyncio.wait_for(device.arrived.get(), 5)
    other = await socket_of()
    await other.register("another")
    assert await read == {FW_VERSION: "1.0"}
    assert [len(copies) for copies in device.copies.values()] == [2]


async def test_the_round_trip_learnt_at_the_old_address_holds_at_the_new_one(
        server: Lwm2mServer, socket_of: Opener) -> None:
    old = await socket_of()
    await old.register("rebooting")
    client = server.client("rebooting")
    for _ in range(4):  # loopback round trips: the RTO falls to its floor
        await client.read(FW_VERSION, timeout=5)
    new = await socket_of()
    await new.register("rebooting")
    new.drop_next = True
    assert await client.read(FW_VERSION, timeout=10) == {FW_VERSION: "1.0"}
    ((first, again),) = new.copies.values()
    # the known RTO, 0.5-0.75 s: a new address alone would start over at 2-3 s
    assert MIN_RTO * 0.99 <= again - first < 1.0
