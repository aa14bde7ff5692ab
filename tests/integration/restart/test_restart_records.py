"""`RestartRecords` over a real state file and a real LwM2M server: what the server hands
out is recorded before it can reach a device, and on start only what is still valid
comes back (a registration of a declared device, the offer of a running download whose
image can still be read)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reconciler.controller.restore import RestartRecords
from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.desired import Collection, DesiredState, Device, FirmwareImage, Management
from reconciler.model.lwm2m import NO_FORMATS, Registration
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState
from reconciler.store import SqliteStore, open_reader, open_store

CID, IMG = "c1", "img-2"
IMAGE = bytes(range(256)) * 4


def _desired() -> DesiredState:
    image = FirmwareImage(IMG, CID, "2.0", "fw.bin", "00" * 32, len(IMAGE), 0, "fw.bin")
    devices = {f"d{n}": Device(f"d{n}", CID, f"ep{n}") for n in range(3)}
    return DesiredState("r", {CID: Collection(CID, "c", Management.COLLECTION, IMG)},
                        {IMG: image}, devices)


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, Lwm2mServer]]:
    store = open_store(tmp_path / "s.db")
    server = Lwm2mServer("127.0.0.1", 0)
    await server.start()
    try:
        yield store, server
    finally:
        await server.stop()
        store.close()


def _reg(endpoint: str, now: float) -> Registration:
    return Registration(f"id-{endpoint}", endpoint, "127.0.0.1", 9, 600, "1.1", "U", False,
                        ("/5/0",), now - 10, now - 10)


async def _bytes(image_id: str) -> bytes:
    assert image_id == IMG
    return IMAGE


async def _unreadable(image_id: str) -> bytes:
    raise FileNotFoundError(f"fw.bin is not image {image_id}")


def _hand_out(store: SqliteStore, server: Lwm2mServer, now: float) -> None:
    """Three offers and four registrations, as a first run leaves them."""
    server.subscribe_offers(RestartRecords(store, server).on_offer)
    for n in range(3):
        server.offer_firmware(f"ep{n}", IMG, IMAGE)
        store.put_registration(_reg(f"ep{n}", now), NO_FORMATS)
    store.put_registration(_reg("ep-undeclared", now), NO_FORMATS)


async def test_offers_are_recorded_as_handed_out_and_only_valid_ones_come_back(
        parts: tuple[SqliteStore, Lwm2mServer], tmp_path: Path) -> None:
    store, server = parts
    now = time.time()  # the first server stamps offers with the real clock
    _hand_out(store, server, now)
    server.revoke_firmware("ep2")  # its update ended: its offer leaves the store too
    assert [o.endpoint for o in store.live_offers(now)] == ["ep0", "ep1"]
    store.put_progress(DeviceProgress("d0", IMG, UpdateState.DOWNLOADING))
    store.put_progress(DeviceProgress("d1", IMG, UpdateState.CURRENT))
    restarted = Lwm2mServer("127.0.0.1", 0, clock=lambda: now)
    records = RestartRecords(store, restarted)
    # offers first, before the socket listens: no block request can find them missing
    assert await records.restore_offers(_desired(), _bytes, now) == 1
    await restarted.start()
    try:
        result = records.restore_registrations(_desired(), now)
        assert (result.registrations, result.offers) == (3, 1)
        assert sorted(result.endpoints) == ["ep0", "ep1", "ep2"]
        assert restarted.registration("ep-undeclared") is None
        offered = restarted.firmware.offered("ep0")
        assert offered is not None
        served = restarted.firmware.served(offered.token)
        assert served is not None and served.data == IMAGE
        assert restarted.firmware.offered("ep1") is None  # Current: its offer stays dead
    finally:
        await restarted.stop()
    assert [o.endpoint for o in store.live_offers(now)] == ["ep0"]
    reader = open_reader(tmp_path / "s.db")
    try:
        assert reader.restart_status() == {"started_at": now, "registrations": 3, "offers": 1}
    finally:
        reader.close()


async def test_an_offer_whose_image_cannot_be_read_is_dropped_not_fatal(
        parts: tuple[SqliteStore, Lwm2mServer]) -> None:
    store, server = parts
    now = time.time()  # the first server stamps offers with the real clock
    _hand_out(store, server, now)
    store.put_progress(DeviceProgress("d0", IMG, UpdateState.DOWNLOADING))
    restarted = Lwm2mServer("127.0.0.1", 0, clock=lambda: now)
    records = RestartRecords(store, restarted)
    assert await records.restore_offers(_desired(), _unreadable, now) == 0
    await restarted.start()
    try:
        result = records.restore_registrations(_desired(), now)
    finally:
        await restarted.stop()
    assert (result.registrations, result.offers) == (3, 0)
    assert store.live_offers(now) == []
