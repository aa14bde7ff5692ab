"""The simulator against our real `Lwm2mServer` (the other side of the same wire)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.lwm2m import (
    DEV_FIRMWARE_VERSION,
    FW_PACKAGE_URI,
    FW_STATE,
    FW_UPDATE,
    FW_UPDATE_RESULT,
    DeliveryMethod,
    FirmwareState,
    Path,
    RegistrationEvent,
    RegistrationEventKind,
)
from reconciler.simulator import DeviceSpec, Fleet, Timing, make_package
from reconciler.simulator.coap import Reliability

FAST = Timing(queue_window=0.5, install_delay=0.01, reboot_delay=0.02, retry_delay=0.2,
              reliability=Reliability(ack_timeout=0.3, max_retransmit=2))
IMAGE = make_package("2.0.0", bytes(range(256)) * 10)


@pytest.fixture
async def lwm2m() -> AsyncIterator[Lwm2mServer]:
    server = Lwm2mServer("127.0.0.1", 0)
    await server.start()
    yield server
    await server.stop()


def offer(server: Lwm2mServer, endpoint: str, data: bytes) -> str:
    return server.offer_firmware(endpoint, "img-2", data)


async def start(server: Lwm2mServer, fleets: list[Fleet], *specs: DeviceSpec) -> Fleet:
    fleet = Fleet(f"coap://127.0.0.1:{server.port}", list(specs), timing=FAST)
    fleets.append(fleet)
    await fleet.start(wait_registered=True, timeout=10)
    return fleet


async def test_the_server_sees_the_registration_and_reads_what_the_device_reports(
        lwm2m: Lwm2mServer, fleets: list[Fleet]) -> None:
    await start(lwm2m, fleets, DeviceSpec("real-1", version="1.0.0", lwm2m_version="1.1"))
    registration = lwm2m.registration("real-1")
    assert registration is not None
    assert registration.lwm2m_version == "1.1" and registration.binding == "U"
    assert set(registration.object_links) >= {"/1/0", "/3/0", "/5/0"}
    client = lwm2m.client("real-1")
    assert (await client.read(DEV_FIRMWARE_VERSION, timeout=5)) == {
        DEV_FIRMWARE_VERSION: "1.0.0"}
    firmware = await client.read(Path(5, 0), timeout=5)
    assert firmware[FW_STATE] == 0 and firmware[FW_UPDATE_RESULT] == 0


async def test_a_pull_update_driven_by_the_server_ends_in_a_new_registration(
        lwm2m: Lwm2mServer, fleets: list[Fleet]) -> None:
    fleet = await start(lwm2m, fleets, DeviceSpec("real-2", version="1.0.0"))
    registered: asyncio.Queue[RegistrationEvent] = asyncio.Queue()
    lwm2m.subscribe(registered.put_nowait)
    client = lwm2m.client("real-2")
    states: list[object] = []
    observation = await client.observe(FW_STATE, lambda v: states.append(v[FW_STATE]),
                                       timeout=5)
    await client.write(FW_PACKAGE_URI, offer(lwm2m, "real-2", IMAGE), timeout=5)
    await fleet.device("real-2").wait_state(FirmwareState.DOWNLOADED)
    await client.execute(FW_UPDATE, timeout=5)
    event = await asyncio.wait_for(registered.get(), 10)
    while event.kind != RegistrationEventKind.REGISTERED:
        event = await asyncio.wait_for(registered.get(), 10)
    await observation.cancel()
    assert (await client.read(DEV_FIRMWARE_VERSION, timeout=5)) == {
        DEV_FIRMWARE_VERSION: "2.0.0"}
    assert (await client.read(FW_UPDATE_RESULT, timeout=5)) == {FW_UPDATE_RESULT: 1}
    # The first value, then Downloading and Downloaded (Updating may race the reboot).
    assert states[:3] == [0, 1, 2]


async def test_the_server_pushes_a_package_block_wise_to_a_push_only_device(
        lwm2m: Lwm2mServer, fleets: list[Fleet]) -> None:
    fleet = await start(lwm2m, fleets,
                        DeviceSpec("real-3", delivery=DeliveryMethod.PUSH_ONLY))
    await lwm2m.client("real-3").push_firmware(IMAGE, timeout=10)
    assert fleet.device("real-3").state == FirmwareState.DOWNLOADED
    await lwm2m.client("real-3").execute(FW_UPDATE, timeout=5)
    await fleet.device("real-3").wait_version("2.0.0")
