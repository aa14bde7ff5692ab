"""A real SQLite store populated with the reference page's ids, and the app around it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.api import create_app
from reconciler.model.desired import Collection, DesiredState, Device, FirmwareImage, Management
from reconciler.model.lwm2m import FirmwareState
from reconciler.model.observed import DeviceProgress, DeviceReport
from reconciler.model.status import UpdateState
from reconciler.store import SqliteReader, SqliteStore, open_reader, open_store

TOKEN = "s3cret-token"


class Ref:
    """Ids from /work/shared/reference/fota-api.md, handed to tests as the `ref` fixture."""

    cid = "17dh0cf43jfhig"
    other_cid = "17dh0cf43jfhkk"
    old = "17dh0cf43jfgnk"  # version 1.0, every device runs it
    new = "17dh0cf43jfh08"  # version 2.0, the collection's target
    device = "17dh0cf4465ae6"
    device2 = "17dh0cf4465ae7"
    stranger = "17dh0cf4465ae8"  # a device of the other collection

    @staticmethod
    def desired(management: Management = Management.COLLECTION) -> DesiredState:
        return desired(management, revision="5e5e5e5")


def desired(management: Management = Management.COLLECTION, target: str = "17dh0cf43jfh08",
            revision: str = "4f1c2e9") -> DesiredState:
    images = {
        Ref.old: FirmwareImage(
            Ref.old, Ref.cid, "1.0", "zephyr.signed.bin",
            "030130c604726ff35ba6c2d8f6bf70d7df1b21c628fa8cae5547603dd8b176d5", 144564,
            1559653611268, "images/zephyr.signed.bin"),
        Ref.new: FirmwareImage(
            Ref.new, Ref.cid, "2.0", "initial-version.signed.bin",
            "fc8902c5221bb0cb077f54fbefd53b5a4be970384a1496dbb2b8f99be733dd1d", 9250,
            1576083823998, "images/initial-version.signed.bin", tags={"git": "a1b2c3"}),
    }
    collections = {
        Ref.cid: Collection(Ref.cid, "fleet", management, target, tags={"name": "fleet"}),
        Ref.other_cid: Collection(Ref.other_cid, "lab"),
    }
    devices = {
        Ref.device: Device(Ref.device, Ref.cid, "urn:imei:1", target_image_id=Ref.old),
        Ref.device2: Device(Ref.device2, Ref.cid, "urn:imei:2", tags={"site": "oslo"}),
        Ref.stranger: Device(Ref.stranger, Ref.other_cid, "urn:imei:3"),
    }
    return DesiredState(revision, collections, images, devices)


def populate(store: SqliteStore) -> None:
    store.apply_desired(desired())
    store.put_report(Ref.device, DeviceReport(
        "urn:imei:1", firmware_version="1.0 ", serial_number="SN1", model_number="nrf9160",
        manufacturer="Nordic", fw_state=FirmwareState.DOWNLOADING))
    store.put_report(Ref.device2, DeviceReport("urn:imei:2", firmware_version="1.0"))
    store.put_progress(DeviceProgress(Ref.device, Ref.new, UpdateState.DOWNLOADING,
                                      "block 12 of 90", attempts=1))


Ref.populate = staticmethod(populate)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def ref() -> type[Ref]:
    return Ref


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = open_store(tmp_path / "fota.db")
    populate(opened)
    yield opened
    opened.close()


@pytest.fixture
def reader(tmp_path: Path, store: SqliteStore) -> Iterator[SqliteReader]:
    opened = open_reader(tmp_path / "fota.db")
    yield opened
    opened.close()


@pytest.fixture
async def client(reader: SqliteReader) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(reader, tokens=[TOKEN, "second-token"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test",
                                 headers={"X-API-Token": TOKEN}) as http:
        yield http
