"""Simulated devices with a PSK against the CoAPs listener: the whole Object 5 path works
inside DTLS sessions (Register, the server's reads and writes, the coaps:// download, the
Execute), an impostor identity cannot register as another endpoint, and a secured endpoint
is refused over plain CoAP (issue 12 items 3 and 6)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.lwm2m import FirmwareState, Path, UpdateResult
from reconciler.simulator.coap import Reliability
from reconciler.simulator.firmware import make_package
from reconciler.simulator.fleet import Fleet
from reconciler.simulator.spec import DeviceSpec, Timing

from .conftest import KEYS

FAST = Timing(retry_delay=0.2, reliability=Reliability(ack_timeout=0.5, max_retransmit=2))


def spec(endpoint: str, identity: bytes | None) -> DeviceSpec:
    psk = None if identity is None else (identity, KEYS[identity][0])
    return DeviceSpec(endpoint=endpoint, version="1.0", psk=psk)


@pytest.fixture
async def fleet_of(server: Lwm2mServer) -> AsyncIterator[list[Fleet]]:
    fleets: list[Fleet] = []
    yield fleets
    for fleet in fleets:
        await fleet.stop()


async def start(fleets: list[Fleet], uri: str, *specs: DeviceSpec,
                catalog: dict[str, str] | None = None) -> Fleet:
    fleet = Fleet(uri, list(specs), catalog, FAST)
    fleets.append(fleet)
    await fleet.start()
    return fleet


async def test_a_secured_device_updates_inside_its_session(
    server: Lwm2mServer, fleet_of: list[Fleet]
) -> None:
    coaps = f"coaps://127.0.0.1:{server.coaps_port}"
    fleet = await start(fleet_of, coaps, spec("urn:dev:1", b"dev-1"))
    device = fleet.device("urn:dev:1")
    await device.wait_registered()
    client = server.client("urn:dev:1")
    assert (await client.read(Path(3, 0, 3)))[Path(3, 0, 3)] == "1.0"
    uri = server.offer_firmware("urn:dev:1", "img-2", make_package("2.0", b"x" * 3000))
    assert uri.startswith(coaps)
    await client.write(Path(5, 0, 1), uri)
    await device.wait_state(FirmwareState.DOWNLOADED, timeout=20)
    await client.execute(Path(5, 0, 2))
    await device.wait_version("2.0", timeout=20)
    assert device.result == UpdateResult.SUCCESS
    status = server.dtls_status()
    assert status is not None
    # Register, the download's own session, the Register after the reboot (new socket)
    assert status["handshakes"] == 3 and status["handshake_failures"] == 0


async def test_an_impostor_identity_cannot_register_as_another_endpoint(
    server: Lwm2mServer, fleet_of: list[Fleet]
) -> None:
    coaps = f"coaps://127.0.0.1:{server.coaps_port}"
    fleet = await start(fleet_of, coaps, spec("urn:dev:1", b"dev-2"))
    device = fleet.device("urn:dev:1")
    await device.wait_for(lambda: device.register_attempts >= 1)
    assert not device.registered and server.registration("urn:dev:1") is None
    status = server.dtls_status()
    assert status is not None and status["handshakes"] >= 1  # the session itself was fine


async def test_a_secured_endpoint_is_refused_over_plain_coap(
    server: Lwm2mServer, fleet_of: list[Fleet]
) -> None:
    fleet = await start(fleet_of, f"coap://127.0.0.1:{server.port}", spec("urn:dev:1", None))
    device = fleet.device("urn:dev:1")
    await device.wait_for(lambda: device.register_attempts >= 1)
    assert not device.registered and server.registration("urn:dev:1") is None
