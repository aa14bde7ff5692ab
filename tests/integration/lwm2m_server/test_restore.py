"""A restarted server takes back what an earlier run handed out: registrations (under the
ids the devices know, at the address each was last heard from, with the formats it told
us) and package offers (under their tokens), and tells its subscriber about offers. A
server started `restoring` holds registration requests until the restore ran."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aiocoap
from aiocoap import ACK, CON, EMPTY, Message
from aiocoap.numbers.codes import Code

from reconciler.lwm2m.codecs import ContentFormat as CF
from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.lwm2m import ContentFormats, FirmwareOffer, Path

FW_VERSION = Path(3, 0, 3)


@asynccontextmanager
async def second_server(clock: Callable[[], float], *,
                        restoring: bool = False) -> AsyncIterator[Lwm2mServer]:
    """Another server on another port: the 'restarted' one."""
    srv = Lwm2mServer("127.0.0.1", 0, clock=clock, awake_seconds=30.0)
    await srv.start(restoring=restoring)
    try:
        yield srv
    finally:
        await srv.stop()


async def test_a_restored_registration_is_live_at_once_under_its_old_id_and_formats(
        server: Lwm2mServer, clock: Any, make_device: Callable[..., Awaitable[Any]],
        enroll: Callable[..., Awaitable[Message]]) -> None:
    device = await make_device(formats=(CF.SENML_JSON, CF.TLV))
    await enroll(device, "ep=d1&lwm2m=1.1&lt=300")
    reg = server.registration("d1")
    assert reg is not None
    async with second_server(clock) as restarted:
        assert restarted.restore([(reg, ContentFormats(announced=None, read=CF.SENML_JSON))]) == 1
        assert restarted.registration("d1") == reg
        assert await restarted.client("d1").read(FW_VERSION, timeout=5) == {FW_VERSION: "1.0.0"}
        [(method, _, accept, source)] = device.seen
        # the format its reads accepted before the restart, not SenML CBOR first
        assert (method, accept, source[1]) == ("GET", CF.SENML_JSON, restarted.port)
        assert restarted.formats("d1") == ContentFormats(None, CF.SENML_JSON)
        update = Message(code=Code.POST,
                         uri=f"coap://127.0.0.1:{restarted.port}/rd/{reg.registration_id}")
        response = await device.context.request(update).response
        assert response.code == Code.CHANGED  # the device's next Update is accepted


async def test_an_expired_or_already_live_registration_is_not_restored(
        server: Lwm2mServer, clock: Any, make_device: Callable[..., Awaitable[Any]],
        enroll: Callable[..., Awaitable[Message]]) -> None:
    device = await make_device()
    await enroll(device, "ep=d2&lt=60")
    live = server.registration("d2")
    assert live is not None
    assert server.restore([(live, ContentFormats())]) == 0  # endpoint live already
    async with second_server(clock) as restarted:
        clock.now += 61
        assert restarted.restore([(live, ContentFormats())]) == 0
        assert restarted.registration("d2") is None


async def test_offers_are_told_to_the_subscriber_and_a_restored_one_serves_the_same_uri(
        server: Lwm2mServer, clock: Any) -> None:
    told: list[tuple[str, FirmwareOffer | None]] = []
    server.subscribe_offers(lambda ep, offer: told.append((ep, offer)))
    image = bytes(range(256)) * 8
    uri = server.offer_firmware("d3", "img-1", image)
    assert server.offer_firmware("d3", "img-1", image) == uri  # the same offer: told once
    server.revoke_firmware("d3")
    server.revoke_firmware("d3")  # nothing left to revoke: not told again
    [(ep, offer), revoked] = told
    assert ep == "d3" and offer is not None and revoked == ("d3", None)
    assert uri.endswith(f"/fw/{offer.token}") and offer.image_id == "img-1"
    assert offer.expires_at > clock.now
    async with second_server(clock) as restarted:
        restarted.restore_offer(offer, image)
        client = await aiocoap.Context.create_client_context()
        try:
            request = Message(code=Code.GET,
                              uri=f"coap://127.0.0.1:{restarted.port}/fw/{offer.token}")
            response = await client.request(request).response
        finally:
            await client.shutdown()
        assert response.code == Code.CONTENT and response.payload == image


async def test_a_device_that_moved_meanwhile_is_found_again_at_its_next_update(
        server: Lwm2mServer, clock: Any, make_device: Callable[..., Awaitable[Any]],
        enroll: Callable[..., Awaitable[Message]]) -> None:
    device = await make_device()
    await enroll(device, "ep=d4&lt=300")
    reg = server.registration("d4")
    assert reg is not None
    moved = replace(reg, port=1)  # where it was heard from before our restart
    async with second_server(clock) as restarted:
        assert restarted.restore([(moved, ContentFormats())]) == 1
        update = Message(code=Code.POST,
                         uri=f"coap://127.0.0.1:{restarted.port}/rd/{reg.registration_id}")
        assert (await device.context.request(update).response).code == Code.CHANGED
        again = restarted.registration("d4")
        assert again is not None and again.port == reg.port
        assert await restarted.client("d4").read(FW_VERSION, timeout=5) == {FW_VERSION: "1.0.0"}


async def test_an_update_read_before_the_restore_is_held_and_then_answered_2_04(
        server: Lwm2mServer, clock: Any, make_device: Callable[..., Awaitable[Any]],
        enroll: Callable[..., Awaitable[Message]], udp_peer: socket.socket) -> None:
    """A datagram can be read as soon as the socket is bound; an Update read before the
    registrations are back would get 4.04 and cost the device a new Register."""
    device = await make_device()
    await enroll(device, "ep=d5&lt=300")
    reg = server.registration("d5")
    assert reg is not None
    loop = asyncio.get_running_loop()
    async with second_server(clock, restoring=True) as restarted:
        update = Message(_mtype=CON, _mid=7, _token=b"u5", code=Code.POST,
                         uri_path=("rd", reg.registration_id))
        await loop.sock_sendto(udp_peer, update.encode(), ("127.0.0.1", restarted.port))
        received = Message.decode((await _receive(udp_peer))[0])
        # read and held: aiocoap acknowledges a request whose answer is not ready
        assert (received.mtype, received.code, received.mid) == (ACK, EMPTY, 7)
        assert restarted.restore([(reg, ContentFormats())]) == 1
        answer = Message.decode((await _receive(udp_peer))[0])
        assert (answer.code, answer.token) == (Code.CHANGED, b"u5")
        if answer.mtype == CON:  # a separate response: acknowledge it
            ack = Message(_mtype=ACK, _mid=answer.mid, code=EMPTY)
            await loop.sock_sendto(udp_peer, ack.encode(), ("127.0.0.1", restarted.port))


async def _receive(sock: socket.socket) -> tuple[bytes, Any]:
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recvfrom(sock, 2048), 5)
