"""Push delivery: /5/0/0 written block-wise with Block1 to a real aiocoap device endpoint."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiocoap import GET, Context, Message, resource
from aiocoap.numbers.codes import Code

from reconciler.errors import (
    DeviceMoved,
    DeviceNotRegistered,
    DeviceRequestFailed,
    DeviceTimeout,
    TemporaryError,
)
from reconciler.lwm2m.push import Transfer, push_firmware
from reconciler.lwm2m.pushes import Pushes
from reconciler.model.lwm2m import RegistrationEventKind as Kind

from .conftest import socket_port


@dataclass
class PackageResource(resource.Resource):  # type: ignore[misc]
    """A device's /5/0/0 that takes Block1 itself, as constrained clients do."""

    wanted_szx: int = 6
    refuse_with: Code | None = None
    lost_partial: bool = False  # answers the next block after 0 with 4.08, once
    refuse_after: int | None = None  # from this block on, no answer
    stored: bytearray = field(default_factory=bytearray)
    blocks: list[tuple[int, bool, int]] = field(default_factory=list)
    size1: int | None = None

    def __post_init__(self) -> None:
        super().__init__()

    async def needs_blockwise_assembly(self, request: Any) -> bool:
        return False

    async def render_get(self, request: Any) -> Message:
        return Message(code=Code.CONTENT, payload=b"")

    async def render_put(self, request: Any) -> Message:
        if self.refuse_with is not None:
            return Message(code=self.refuse_with, payload=b"package too large")
        assert request.opt.content_format == 42
        num, more, szx = request.opt.block1
        self.blocks.append((num, more, szx))
        if self.refuse_after is not None and num >= self.refuse_after:
            await asyncio.sleep(60)  # never answers: the client gives up first
        if self.lost_partial and num > 0:
            self.lost_partial = False
            return Message(code=Code.REQUEST_ENTITY_INCOMPLETE)
        self.size1 = self.size1 or request.opt.size1
        offset = num << (szx + 4)
        self.stored[offset : offset + len(request.payload)] = request.payload
        if more:
            return Message(code=Code.CONTINUE, block1=(num, True, min(szx, self.wanted_szx)))
        return Message(code=Code.CHANGED, block1=(num, False, szx))


@dataclass
class Device:
    package: PackageResource
    uri: str


@pytest.fixture
async def device() -> AsyncIterator[Device]:
    package = PackageResource()
    site = resource.Site()
    site.add_resource(("5", "0", "0"), package)
    context = await Context.create_server_context(site, bind=("127.0.0.1", 0), transports=["udp6"])
    try:
        yield Device(package, f"coap://127.0.0.1:{socket_port(context)}")
    finally:
        await context.shutdown()


async def test_a_push_arrives_byte_exact_in_1024_byte_blocks(device: Device, client: Any) -> None:
    image = os.urandom(5000)
    await push_firmware(client, image, uri=device.uri, timeout=10)
    assert bytes(device.package.stored) == image
    assert [b[0] for b in device.package.blocks] == [0, 1, 2, 3, 4]
    assert device.package.blocks[-1][1] is False and device.package.size1 == 5000


async def test_a_device_asking_for_smaller_blocks_gets_them_from_the_right_offset(
    device: Device, client: Any
) -> None:
    device.package.wanted_szx = 2  # 64 bytes
    image = os.urandom(3000)
    await push_firmware(client, image, uri=device.uri, timeout=10)
    assert bytes(device.package.stored) == image
    assert device.package.blocks[:3] == [(0, True, 6), (16, True, 2), (17, True, 2)]


async def test_a_push_may_start_with_small_blocks_and_reach_a_device_by_its_remote(
    device: Device, client: Any
) -> None:
    probe = await client.request(Message(code=GET, uri=device.uri + "/5/0/0")).response
    await push_firmware(client, b"tiny", remote=probe.remote, timeout=10, szx=0)
    assert bytes(device.package.stored) == b"tiny"
    assert device.package.blocks == [(0, False, 0)]


async def test_a_device_error_becomes_device_request_failed(device: Device, client: Any) -> None:
    device.package.refuse_with = Code.REQUEST_ENTITY_TOO_LARGE
    with pytest.raises(DeviceRequestFailed, match="package too large") as caught:
        await push_firmware(client, os.urandom(3000), uri=device.uri, timeout=10)
    assert (caught.value.code, caught.value.path) == ("4.13", "/5/0/0")


async def test_a_silent_device_becomes_device_timeout(client: Any) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        uri = f"coap://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(DeviceTimeout, match=r"not done in 0\.3s"):
            await push_firmware(client, b"x" * 2000, uri=uri, timeout=0.3)


async def test_exactly_one_way_to_reach_the_device_is_required(client: Any) -> None:
    with pytest.raises(ValueError, match="exactly one of remote or uri"):
        await push_firmware(client, b"x", timeout=1)
    with pytest.raises(ValueError, match="szx"):
        await push_firmware(client, b"x", uri="coap://127.0.0.1:9", timeout=1, szx=7)
    await asyncio.sleep(0)


async def test_a_transfer_of_an_earlier_push_continues_after_its_last_acknowledged_block(
    device: Device, client: Any
) -> None:
    image = os.urandom(5000)
    device.package.stored[:2048] = image[:2048]  # what the device acknowledged before
    transfer = Transfer(len(image), szx=6, offset=2048)
    await push_firmware(client, image, uri=device.uri, timeout=10, transfer=transfer)
    assert [b[0] for b in device.package.blocks] == [2, 3, 4]  # blocks 0 and 1 not again
    assert bytes(device.package.stored) == image
    assert transfer.offset == len(image)


async def test_a_device_that_lost_the_partial_transfer_gets_it_all_from_block_0(
    device: Device, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    device.package.lost_partial = True
    image = os.urandom(3000)
    transfer = Transfer(len(image), szx=6, offset=1024)
    with caplog.at_level("INFO", logger="reconciler.lwm2m.push"):
        await push_firmware(client, image, uri=device.uri, timeout=10, transfer=transfer)
    assert [b[0] for b in device.package.blocks] == [1, 0, 1, 2]
    assert bytes(device.package.stored) == image
    assert "lost the partial push at block 1 of 3 (4.08); starting again at block 0" in (
        caplog.text)


async def test_a_device_that_lost_the_partial_mid_push_interrupts_it_not_refuses(
    device: Device, client: Any
) -> None:
    # it restarted mid-push: an interruption (resumed, bounded), not a refusal (a retry)
    device.package.lost_partial = True
    transfer = Transfer(3000)
    with pytest.raises(TemporaryError, match="lost the partial push at block 1 of 3"):
        await push_firmware(client, os.urandom(3000), uri=device.uri, timeout=10,
                            transfer=transfer)
    assert transfer.block == 1


@pytest.mark.parametrize(("kind", "error"), [
    (Kind.DEREGISTERED, DeviceNotRegistered), (Kind.EXPIRED, DeviceNotRegistered),
    (Kind.REGISTERED, DeviceMoved)])
async def test_a_push_cut_by_the_device_leaving_ends_at_once_where_it_left_off(
    device: Device, client: Any, kind: Kind, error: type[Exception]
) -> None:
    device.package.refuse_after = 2  # block 2 is never answered: retransmitted for long
    pushes, image = Pushes(lambda: 7.0), os.urandom(5000)

    async def push() -> None:
        with pushes.pushing("ep", "img", len(image), resume=False) as transfer:
            await push_firmware(client, image, uri=device.uri, timeout=60, transfer=transfer)

    task = asyncio.create_task(push())
    for _ in range(500):  # bounded: block 2 arrives within moments on loopback
        if len(device.package.blocks) > 2:
            break
        await asyncio.sleep(0.01)
    pushes.registration("ep", kind)
    with pytest.raises(error, match="during the push"):
        await asyncio.wait_for(task, 1)  # not the exchange's tens of seconds
    cut = pushes.stop("ep")
    assert cut is not None and (cut.block, cut.blocks, cut.refused) == (2, 5, False)
    with pushes.pushing("ep", "img", len(image), resume=True) as again:
        assert again.offset == 2048  # kept past the leaving: it resumes there


async def test_a_stopped_push_leaves_how_far_the_device_acknowledged(
    device: Device, client: Any
) -> None:
    device.package.refuse_after = 2  # silent from block 2 on
    transfer = Transfer(5000)
    with pytest.raises(DeviceTimeout):
        await push_firmware(client, os.urandom(5000), uri=device.uri, timeout=0.5,
                            transfer=transfer)
    assert (transfer.block, transfer.blocks, transfer.offset) == (2, 5, 2048)
