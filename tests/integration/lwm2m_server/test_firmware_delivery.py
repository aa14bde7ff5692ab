"""The server's firmware surface: offers served block-wise on the server's own port and
revocable, and a Block1 push to /5/0/0 of a registered device."""

from __future__ import annotations

import asyncio
import os
import socket
from urllib.parse import urlparse

from aiocoap import Message
from aiocoap.numbers.codes import Code

from reconciler.lwm2m import coapframe
from reconciler.lwm2m.aiocoap_adapter import udp_sockets
from reconciler.lwm2m.fastpath import POLL_INTERVAL
from reconciler.lwm2m.firmware import block_value
from reconciler.model.lwm2m import FW_PACKAGE

IMAGE = os.urandom(5000)
STREAM = 300  # block GETs in the streaming test


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


async def test_while_blocks_stream_the_socket_is_read_in_batches_and_nothing_waits(server):
    """A steady stream of block GETs (one every ~1 ms) is read every POLL_INTERVAL, not
    per datagram: far fewer reads than datagrams. Every block is answered, a CoAP ping
    sent mid-stream still reaches aiocoap, and after the stream a lone request is read
    at once (the socket's reader is back)."""
    path = urlparse(server.offer_firmware("dev-fw", "img1", IMAGE)).path
    segments = [(coapframe.URI_PATH, s.encode()) for s in path.strip("/").split("/")]
    reads = 0

    def counting(previous):
        def handler(*datagram):
            nonlocal reads
            reads += 1
            previous(*datagram)
        return handler

    for udp in udp_sockets(server.context):
        udp.wrap_receive(counting)
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # read at the end
        sock.connect(("127.0.0.1", server.port))
        sock.setblocking(False)

        def get(n: int) -> bytes:
            block = (coapframe.BLOCK2, coapframe.uint(block_value(n % 20, False, 2)))
            return coapframe.build(coapframe.CON, coapframe.GET, n, n.to_bytes(2, "big"),
                                   coapframe.tail([*segments, block]))

        async def answers(count: int) -> list[coapframe.Datagram]:
            return [coapframe.parse(await asyncio.wait_for(loop.sock_recv(sock, 2048), 5))
                    for _ in range(count)]

        for n in range(STREAM):
            sock.send(get(n))
            if n == STREAM // 2:
                sock.send(coapframe.build(coapframe.CON, coapframe.EMPTY, 0xFFFF, b""))
            await asyncio.sleep(0.001)
        got = await answers(STREAM + 1)
        streamed = reads
        await asyncio.sleep(5 * POLL_INTERVAL)  # a poll finds nothing: reading resumes
        started = loop.time()
        sock.send(get(STREAM))
        lone = await answers(1)

    blocks = [a for a in got if a.code == coapframe.CONTENT]
    assert sorted(a.mid for a in blocks) == list(range(STREAM))
    assert all(a.payload == IMAGE[(a.mid % 20) * 64:][:64] for a in blocks)
    assert [(a.mtype, a.mid) for a in got if a.code == coapframe.EMPTY] == [
        (coapframe.RST, 0xFFFF)]
    assert streamed <= STREAM // 3  # about one read per POLL_INTERVAL, not one per block
    assert lone[0].mid == STREAM and loop.time() - started < 1.0


async def test_serving_the_last_block_tells_the_deliveries_at_most_once_a_second(
        server, coap, clock):
    """A download's last block, cut by the slow path the first time and answered from
    the fast path's cache after, marks the package delivered; its other blocks do not,
    and a device that fetches it again within MIN_GAP causes no second look."""
    from reconciler.lwm2m.deliveries import MIN_GAP

    told: list[str] = []
    server.deliveries.subscribe(told.append)
    uri = server.offer_firmware("dev-fw", "img1", IMAGE)
    assert server.deliveries.at("dev-fw") is None
    assert (await _download(coap, uri)).payload == IMAGE  # 5 blocks of 1024
    assert told == ["dev-fw"] and server.deliveries.at("dev-fw") == clock.now
    assert (await _download(coap, uri)).payload == IMAGE  # from the cache this time
    assert told == ["dev-fw"]
    clock.now += MIN_GAP
    assert (await _download(coap, uri)).payload == IMAGE
    assert told == ["dev-fw", "dev-fw"] and server.deliveries.at("dev-fw") == clock.now
