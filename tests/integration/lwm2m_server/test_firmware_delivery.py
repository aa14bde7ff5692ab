"""The server's firmware surface: offers served block-wise on the server's own port and
revocable, and a Block1 push to /5/0/0 of a registered device."""

from __future__ import annotations

import asyncio
import os

from aiocoap import Message
from aiocoap.numbers.codes import Code

from reconciler.model.lwm2m import FW_PACKAGE

IMAGE = os.urandom(5000)


async def _download(coap, uri: str) -> Message:
    response: Message = await asyncio.wait_for(
        coap.request(Message(code=Code.GET, uri=uri)).response, 5)
    return response


async def test_an_offered_image_downloads_byte_exact_from_the_server_port(server, coap):
    uri = server.offer_firmware("dev-fw", "img1", IMAGE)

    response = await _download(coap, uri)

    assert uri.startswith(f"coap://127.0.0.1:{server.port}/fw/")
    assert response.code == Code.CONTENT and response.payload == IMAGE


async def test_offering_the_same_image_again_keeps_the_uri(server):
    assert server.offer_firmware("d", "img1", IMAGE) == server.offer_firmware("d", "img1", IMAGE)


async def test_a_revoked_offer_is_no_longer_served(server, coap):
    uri = server.offer_firmware("dev-fw", "img1", IMAGE)
    server.revoke_firmware("dev-fw")

    assert (await _download(coap, uri)).code == Code.NOT_FOUND


async def test_the_public_uri_names_the_offer_when_given(clock):
    from reconciler.lwm2m.server import Lwm2mServer

    server = Lwm2mServer("127.0.0.1", 0, public_uri="coap://fota.example:5683/")

    assert server.offer_firmware("d", "i", b"x").startswith("coap://fota.example:5683/fw/")


async def test_push_firmware_writes_the_package_block_wise_to_the_device(
    server, make_device, enroll
):
    device = await make_device()
    await enroll(device, "ep=pushed")

    await server.client("pushed").push_firmware(IMAGE, timeout=10)

    assert device.values[FW_PACKAGE] == IMAGE
    assert {seen[:3] for seen in device.seen} == {("PUT", "/5/0/0", 42)}
