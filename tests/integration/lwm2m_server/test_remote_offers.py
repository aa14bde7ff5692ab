"""A download another node offered continues here (issue 13, several nodes): a block GET
of a token this server never handed out is looked up in the shared store and served
block for block from this node's copy of the image; a token found nowhere is 4.04, and
remembered, so a flood of guessed tokens costs one lookup each at most once a minute."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code

from reconciler.lwm2m.remote_offers import RemoteOffers
from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.lwm2m import FirmwareOffer
from reconciler.serve import nodes
from reconciler.serve.nodes import store_offers
from reconciler.store import open_store

IMAGE = os.urandom(5000)
TOKEN = "A" * 24  # the shape of FirmwareRepository's tokens


async def _get(coap, uri: str, block: int | None = None) -> Message:
    request = Message(code=Code.GET, uri=uri)
    if block is not None:
        request.opt.block2 = (block, False, 4)  # 256-byte blocks, from block `block`
    exchange = coap.request(request, handle_blockwise=block is None)
    response: Message = await asyncio.wait_for(exchange.response, 10)
    return response


async def test_a_download_offered_by_another_node_resumes_here_at_its_block(
        server, coap, clock, tmp_path: Path) -> None:
    store = open_store(tmp_path / "shared.db")  # node A recorded the offer there
    store.put_offer(FirmwareOffer(TOKEN, "dev-fw", "img1", expires_at=clock() + 600))
    lookups: list[str] = []

    async def find(token: str) -> tuple[FirmwareOffer, bytes] | None:
        lookups.append(token)
        offer = await asyncio.to_thread(store.offer_by_token, token, clock())
        return None if offer is None else (offer, IMAGE)

    server.firmware.remote = RemoteOffers(server.firmware, find)
    base = f"coap://127.0.0.1:{server.port}/fw"
    try:
        resumed = await _get(coap, f"{base}/{TOKEN}", block=7)
        whole = await _get(coap, f"{base}/{TOKEN}")
        guessed = [await _get(coap, f"{base}/{'B' * 24}") for _ in range(3)]
    finally:
        store.close()
    assert resumed.code == Code.CONTENT
    assert resumed.payload == IMAGE[7 * 256:8 * 256] and resumed.opt.block2.block_number == 7
    assert whole.code == Code.CONTENT and whole.payload == IMAGE
    assert [g.code for g in guessed] == [Code.NOT_FOUND] * 3
    assert lookups == [TOKEN, "B" * 24]  # filed once; the miss remembered


def _policy(endpoint: str, identity: bytes | None) -> str | None:
    """urn:sec:* must use DTLS-PSK; every other endpoint may use plain CoAP."""
    return "requires DTLS-PSK" if endpoint.startswith("urn:sec") and identity is None else None


async def test_a_plain_listener_with_a_security_policy_looks_up_other_nodes_offers(
        coap, clock, tmp_path: Path) -> None:
    """As `fota serve` runs it (a register policy and a CoAPs listener beside plain
    CoAP): another node's offer to a plain device is served here from its block on, one
    to a secured device never over plain CoAP (it downloads inside its DTLS session)."""
    server = Lwm2mServer("127.0.0.1", 0, coaps=("127.0.0.1", 0), psk=lambda _id: None,
                         register_check=_policy, clock=clock)
    await server.start()
    store = open_store(tmp_path / "shared.db")
    secured = "S" * 24
    store.put_offer(FirmwareOffer(TOKEN, "urn:plain:1", "img1", expires_at=clock() + 600))
    store.put_offer(FirmwareOffer(secured, "urn:sec:1", "img1", expires_at=clock() + 600))

    async def image(_image_id: str) -> bytes:
        return IMAGE

    server.firmware.remote = RemoteOffers(
        server.firmware, store_offers(store, image, clock, server.plain_may_serve))
    base = f"coap://127.0.0.1:{server.port}/fw"
    try:
        resumed = await _get(coap, f"{base}/{TOKEN}", block=3)
        refused = await _get(coap, f"{base}/{secured}", block=3)
    finally:
        await server.stop()
        store.close()
    assert resumed.code == Code.CONTENT and resumed.payload == IMAGE[3 * 256:4 * 256]
    assert refused.code == Code.NOT_FOUND


async def test_another_nodes_offer_waits_a_bounded_time_for_its_image_here(
        clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The leader starts downloads as soon as it applied a revision; this node applies it
    a moment later. A block GET meanwhile waits for the image instead of failing the
    device's update with a 4.04, and gives up after `IMAGE_WAIT`."""
    store = open_store(tmp_path / "shared.db")
    store.put_offer(FirmwareOffer(TOKEN, "urn:plain:1", "img1", expires_at=clock() + 600))
    asked, applied = asyncio.Event(), False

    async def image(_image_id: str) -> bytes:
        asked.set()
        if not applied:
            raise FileNotFoundError("no image img1 in the applied revision")
        return IMAGE

    monkeypatch.setattr(nodes, "IMAGE_WAIT", 0.3)
    find = store_offers(store, image, clock, lambda _endpoint: True)
    try:
        never = await find(TOKEN)  # never applied here: given up after IMAGE_WAIT
        asked.clear()
        lookup = asyncio.ensure_future(find(TOKEN))
        await asked.wait()
        waiting = not lookup.done()
        applied = True  # this node applied the revision
        found = await lookup
    finally:
        store.close()
    assert never is None
    assert waiting and found is not None and found[1] == IMAGE
