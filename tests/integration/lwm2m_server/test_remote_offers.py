"""A download another node offered continues here (issue 13, several nodes): a block GET
of a token this server never handed out is looked up in the shared store and served
block for block from this node's copy of the image; a token found nowhere is 4.04, and
remembered, so a flood of guessed tokens costs one lookup each at most once a minute."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from aiocoap import Message
from aiocoap.numbers.codes import Code

from reconciler.lwm2m.remote_offers import RemoteOffers
from reconciler.model.lwm2m import FirmwareOffer
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
