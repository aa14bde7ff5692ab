"""The Object 5 state machine end to end: pull and push, reboot, and every fault."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import aiocoap
import pytest

from reconciler.lwm2m.codecs import ContentFormat
from reconciler.model.lwm2m import DeliveryMethod, FirmwareState, UpdateResult
from reconciler.simulator import DeviceSpec, Fault, make_package

IMAGE = bytes(range(256)) * 12  # 3072 bytes: 6 blocks of 512


async def write_uri(server: Any, endpoint: str, uri: str) -> aiocoap.Message:
    return await server.request(endpoint, aiocoap.PUT, "/5/0/1", payload=uri.encode(),
                                content_format=int(ContentFormat.TEXT))


async def test_a_pull_update_downloads_block_wise_reboots_and_reports_the_new_version(
        server: Any, launch: Any) -> None:
    catalog = {hashlib.sha256(IMAGE).hexdigest(): "2.0.0"}
    fleet = await launch(DeviceSpec("u", version="1.0.0", block_size=256), catalog=catalog)
    device = fleet.device("u")
    registered_from = server.reg("u").hostinfo
    uri = server.offer("u-image", IMAGE)
    assert (await write_uri(server, "u", uri)).code == aiocoap.CHANGED
    await device.wait_state(FirmwareState.DOWNLOADED)
    blocks = server.served["u-image"].blocks
    assert len(blocks) == len(IMAGE) // 256 and {szx for szx, _ in blocks} == {4}
    assert device.blocks == len(blocks)  # what the device counts is what was served
    assert all(f"127.0.0.1:{port}" != registered_from for _, port in blocks)
    assert device.fw.pkg_version == "2.0.0"
    assert (await server.request("u", aiocoap.POST, "/5/0/2")).code == aiocoap.CHANGED
    await server.wait_event("register", "u", count=2)
    await device.wait_version("2.0.0")
    assert server.reg("u").hostinfo != registered_from  # rebooted onto a new socket
    version = await server.request("u", aiocoap.GET, "/3/0/3")
    result = await server.request("u", aiocoap.GET, "/5/0/5")
    state = await server.request("u", aiocoap.GET, "/5/0/3")
    assert (version.payload, result.payload, state.payload) == (b"2.0.0", b"1", b"0")
    assert (device.executes, device.downloads, device.reboots) == (1, 1, 1)


async def test_a_self_describing_package_installs_without_a_catalog(
        server: Any, launch: Any) -> None:
    fleet = await launch(DeviceSpec("m", version="1.0.0"))
    await write_uri(server, "m", server.offer("m-pkg", make_package("1.1.0", IMAGE)))
    await fleet.device("m").wait_state(FirmwareState.DOWNLOADED)
    await server.request("m", aiocoap.POST, "/5/0/2")
    await fleet.device("m").wait_version("1.1.0")
    assert fleet.device("m").result == UpdateResult.SUCCESS


async def test_a_push_update_takes_block1_writes_to_the_package_resource(
        server: Any, launch: Any) -> None:
    fleet = await launch(DeviceSpec("push", delivery=DeliveryMethod.PUSH_ONLY))
    package = make_package("5.0.0", IMAGE)
    pull = await write_uri(server, "push", server.offer("unused", package))
    assert pull.code == aiocoap.METHOD_NOT_ALLOWED  # push only
    size, count = 256, -(-len(package) // 256)
    for num in range(count):
        more = num < count - 1
        answer = await server.request(
            "push", aiocoap.PUT, "/5/0/0", blockwise=False, block1=(num, more, 4),
            payload=package[num * size:(num + 1) * size],
            content_format=int(ContentFormat.OPAQUE))
        assert answer.code == (aiocoap.CONTINUE if more else aiocoap.CHANGED)
        assert answer.opt.block1.block_number == num
    assert fleet.device("push").state == FirmwareState.DOWNLOADED
    await server.request("push", aiocoap.POST, "/5/0/2")
    await fleet.device("push").wait_version("5.0.0")


async def test_writing_an_empty_uri_cancels_a_download(server: Any, launch: Any) -> None:
    fleet = await launch(DeviceSpec("c", faults=frozenset({Fault.SLOW})))
    await write_uri(server, "c", server.offer("c-pkg", make_package("2", IMAGE)))
    assert fleet.device("c").state == FirmwareState.DOWNLOADING
    assert (await write_uri(server, "c", "")).code == aiocoap.CHANGED
    assert (fleet.device("c").state, fleet.device("c").result) == (0, 0)
    assert server.served["c-pkg"].blocks == []  # cancelled before the first slow block


@pytest.mark.parametrize(("fault", "state", "result"), [
    (Fault.CONNECTION_LOST, FirmwareState.IDLE, UpdateResult.CONNECTION_LOST),
    (Fault.INTEGRITY, FirmwareState.IDLE, UpdateResult.INTEGRITY_CHECK_FAILURE),
    (Fault.UNSUPPORTED, FirmwareState.IDLE, UpdateResult.UNSUPPORTED_PACKAGE_TYPE),
])
async def test_a_download_fault_ends_idle_with_its_update_result(
        server: Any, launch: Any, fault: Fault, state: FirmwareState,
        result: UpdateResult) -> None:
    fleet = await launch(DeviceSpec("f", faults=frozenset({fault})))
    await write_uri(server, "f", server.offer("f-pkg", make_package("2", IMAGE)))
    await fleet.device("f").wait_state(state, result)
    assert fleet.device("f").downloads == 0
    assert fleet.device("f").version == "1.0.0"


async def test_a_package_the_server_does_not_have_is_an_invalid_uri(
        server: Any, launch: Any) -> None:
    fleet = await launch(DeviceSpec("x"))
    await write_uri(server, "x", f"{server.uri}/fw/nothing-here")
    await fleet.device("x").wait_state(FirmwareState.IDLE, UpdateResult.INVALID_URI)


async def test_an_image_replaced_mid_download_is_caught_by_its_etag(
        server: Any, launch: Any) -> None:
    fleet = await launch(DeviceSpec("et"))
    uri = server.offer("et-pkg", make_package("2", IMAGE),
                       replace_with=make_package("3", IMAGE[::-1]))
    await write_uri(server, "et", uri)
    await fleet.device("et").wait_state(FirmwareState.IDLE,
                                        UpdateResult.INTEGRITY_CHECK_FAILURE)
    assert len(server.served["et-pkg"].blocks) == 2  # stopped at the first changed block


async def test_bytes_matching_no_known_image_fail_the_integrity_check(
        server: Any, launch: Any) -> None:
    fleet = await launch(DeviceSpec("i"), catalog={"00" * 32: "2.0.0"})
    await write_uri(server, "i", server.offer("i-pkg", IMAGE))
    await fleet.device("i").wait_state(FirmwareState.IDLE, UpdateResult.INTEGRITY_CHECK_FAILURE)


async def test_an_update_failure_returns_to_downloaded_with_result_8(
        server: Any, launch: Any) -> None:
    fleet = await launch(DeviceSpec("uf", faults=frozenset({Fault.UPDATE_FAILED})))
    await write_uri(server, "uf", server.offer("uf-pkg", make_package("2", IMAGE)))
    await fleet.device("uf").wait_state(FirmwareState.DOWNLOADED)
    await server.request("uf", aiocoap.POST, "/5/0/2")
    await fleet.device("uf").wait_state(FirmwareState.DOWNLOADED, UpdateResult.UPDATE_FAILED)
    assert fleet.device("uf").version == "1.0.0" and fleet.device("uf").reboots == 0


async def test_a_reverting_device_comes_back_on_the_old_version(
        server: Any, launch: Any) -> None:
    fleet = await launch(DeviceSpec("rv", version="1.0.0", faults=frozenset({Fault.REVERT})))
    await write_uri(server, "rv", server.offer("rv-pkg", make_package("2", IMAGE)))
    await fleet.device("rv").wait_state(FirmwareState.DOWNLOADED)
    await server.request("rv", aiocoap.POST, "/5/0/2")
    await server.wait_event("register", "rv", count=2)
    answer = await server.request("rv", aiocoap.GET, "/3/0/3")
    assert answer.payload == b"1.0.0" and fleet.device("rv").reboots == 1


async def test_a_silent_device_answers_nothing_once_the_update_starts(
        server: Any, launch: Any) -> None:
    fleet = await launch(DeviceSpec("s", faults=frozenset({Fault.SILENT})))
    await write_uri(server, "s", server.offer("s-pkg", make_package("2", IMAGE)))
    await fleet.device("s").wait_for(lambda: fleet.device("s").silent)
    with pytest.raises(aiocoap.error.ConRetransmitsExceeded):
        await server.request("s", aiocoap.GET, "/5/0/3", impatient=True)
    assert server.served["s-pkg"].blocks == []


async def test_a_slow_link_waits_before_every_block(server: Any, launch: Any) -> None:
    fleet = await launch(DeviceSpec("sl", block_size=1024, faults=frozenset({Fault.SLOW})))
    started = time.monotonic()
    await write_uri(server, "sl", server.offer("sl-pkg", make_package("2", IMAGE)))
    await fleet.device("sl").wait_state(FirmwareState.DOWNLOADED)
    blocks = len(server.served["sl-pkg"].blocks)
    assert blocks == 4 and time.monotonic() - started >= blocks * 0.05


async def test_the_fleet_reports_the_first_device_to_meet_a_condition(
        server: Any, launch: Any) -> None:
    fleet = await launch(DeviceSpec("w1"), DeviceSpec("w2"))
    assert (await server.request("w2", aiocoap.POST, "/5/0/2")).code == (
        aiocoap.METHOD_NOT_ALLOWED)
    first = await fleet.wait_any(lambda d: d.executes >= 1, timeout=5)
    assert first.endpoint == "w2" and fleet.device("w1").executes == 0
