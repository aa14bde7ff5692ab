"""Firmware served over real loopback sockets: the aiocoap resource, the fast path on its
own socket and the fast path hooked into the aiocoap server socket, with aiocoap clients."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from aiocoap import GET, POST, Context, Message
from aiocoap.numbers.codes import Code

from bench.blockserver import BlockServer
from reconciler.lwm2m import coapframe

from .conftest import Served


async def fetch(client: Any, uri: str, *, blockwise: bool = False, **options: Any) -> Any:
    message = Message(code=options.pop("code", GET), uri=uri, **options)
    request = client.request(message, handle_blockwise=blockwise)
    return await asyncio.wait_for(request.response, 10)


async def test_a_whole_image_downloads_byte_exact_with_client_blockwise(
    served: Served, base: str, client: Any, image: bytes
) -> None:
    path = served.repository.offer("dev-a", "img", image)
    response = await fetch(client, base + path, blockwise=True)
    assert (response.code, response.payload) == (Code.CONTENT, image)


async def test_a_first_get_without_block2_gets_block_zero_with_etag_and_size2(
    served: Served, base: str, client: Any, image: bytes
) -> None:
    path = served.repository.offer("dev-a", "img", image)
    response = await fetch(client, base + path)
    offer = served.repository.image("img")
    assert offer is not None
    assert response.payload == image[:1024]
    assert tuple(response.opt.block2) == (0, True, 6)
    assert (response.opt.size2, response.opt.etag, response.opt.content_format) == (
        len(image),
        offer.etag,
        42,
    )


async def test_a_small_image_comes_whole_without_block2(
    served: Served, base: str, client: Any
) -> None:
    path = served.repository.offer("dev-a", "img", b"tiny image")
    response = await fetch(client, base + path)
    assert (response.payload, response.opt.block2) == (b"tiny image", None)


async def test_the_clients_smaller_block_size_is_honoured(
    served: Served, base: str, client: Any, image: bytes
) -> None:
    path = served.repository.offer("dev-a", "img", image)
    response = await fetch(client, base + path, block2=(7, False, 1))
    assert response.payload == image[7 * 32 : 8 * 32]
    assert tuple(response.opt.block2) == (7, True, 1)


async def test_a_block_past_the_end_is_a_bad_option(
    served: Served, base: str, client: Any, image: bytes
) -> None:
    path = served.repository.offer("dev-a", "img", image)
    response = await fetch(client, base + path, block2=(40, False, 4))
    assert response.code == Code.BAD_OPTION and b"past" in response.payload


async def test_only_the_offered_token_fetches_and_a_revoked_one_is_gone(
    served: Served, base: str, client: Any, image: bytes
) -> None:
    path = served.repository.offer("dev-a", "img", image)
    served.repository.offer("dev-b", "img", b"other device's image")
    assert (await fetch(client, base + "/fw/not-a-token")).code == Code.NOT_FOUND
    assert (await fetch(client, base + "/fw")).code == Code.NOT_FOUND
    served.repository.revoke("dev-a")
    assert (await fetch(client, base + path)).code == Code.NOT_FOUND


async def test_any_source_port_holding_the_token_may_download(
    served: Served, base: str, image: bytes
) -> None:
    path = served.repository.offer("dev-a", "img", image)
    for _ in range(2):  # two client sockets, two source ports: both are the device
        other = await Context.create_client_context(transports=["udp6"])
        try:
            assert (await fetch(other, base + path, blockwise=True)).payload == image
        finally:
            await other.shutdown()


async def test_writing_to_a_firmware_path_is_not_allowed(
    served: Served, base: str, client: Any, image: bytes
) -> None:
    path = served.repository.offer("dev-a", "img", image)
    response = await fetch(client, base + path, code=POST, payload=b"x")
    assert response.code == Code.METHOD_NOT_ALLOWED


MALFORMED = (bytes([0x40, 0x01, 0x0A, 0x0B, 0xB2, 0x66]), bytes([0x40, 0x01, 0x0A, 0x0B, 0xF0]))


async def test_malformed_datagrams_never_stop_the_server(
    served: Served, base: str, client: Any, image: bytes
) -> None:
    path = served.repository.offer("dev-a", "img", image)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.connect(("127.0.0.1", int(base.rsplit(":", 1)[1])))
        for datagram in (*MALFORMED, b"\x00garbage that is no CoAP", b""):
            raw.send(datagram)
    assert (await fetch(client, base + path, blockwise=True)).payload == image


async def test_the_fast_path_resets_malformed_confirmables(served: Served) -> None:
    server = BlockServer(served.repository)
    await server.start()
    loop = asyncio.get_running_loop()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.setblocking(False)
            raw.connect(("127.0.0.1", server.port))
            for datagram in MALFORMED:
                await loop.sock_sendall(raw, datagram)
                reply = coapframe.parse(await asyncio.wait_for(loop.sock_recv(raw, 1500), 5))
                expected = (coapframe.RST, coapframe.EMPTY, 0x0A0B)
                assert (reply.mtype, reply.code, reply.mid) == expected
    finally:
        await server.stop()


async def test_the_block_server_serves_ipv6_loopback(
    served: Served, client: Any, image: bytes
) -> None:
    path = served.repository.offer("dev-a", "img", image)
    server = BlockServer(served.repository, "::1")
    await server.start()
    try:
        assert server.base_uri.startswith("coap://[::1]:")
        assert (await fetch(client, server.base_uri + path, blockwise=True)).payload == image
    finally:
        await server.stop()


async def test_block_servers_may_share_a_port_with_reuse_port(
    served: Served, client: Any, image: bytes
) -> None:
    path = served.repository.offer("dev-a", "img", image)
    first = BlockServer(served.repository, reuse_port=True)
    await first.start()
    second = BlockServer(served.repository, port=first.port, reuse_port=True)
    try:
        await second.start()
        assert second.port == first.port
        assert (await fetch(client, first.base_uri + path, blockwise=True)).payload == image
    finally:
        await second.stop()
        await first.stop()
