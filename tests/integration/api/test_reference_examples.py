"""Every curl example of the reference page (fota-api.md), replayed against a real store.

GETs must answer with exactly the keys and JSON types the page shows; the page's writes
(PATCH, POST upload) must answer 405 saying changes go through git, and the resource they
would have returned must read back with the page's shape.
"""

from __future__ import annotations

from typing import Any

import httpx

from reconciler.api import schemas

IMAGE_KEYS = {"imageId": str, "version": str, "filename": str, "sha256": str, "length": int,
              "collectionId": str, "created": int, "tags": dict}


def assert_shape(body: dict[str, Any], expected: dict[str, type]) -> None:
    assert set(body) == set(expected)
    for key, kind in expected.items():
        assert type(body[key]) is kind, key


async def test_listing_the_firmware_images_matches_the_page(client: httpx.AsyncClient,
                                                            ref: Any) -> None:
    r = await client.get(f"/collections/{ref.cid}/firmware")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"images"}
    for image in body["images"]:
        assert_shape(image, IMAGE_KEYS)
    assert body["images"][0] == {
        "imageId": ref.old, "version": "1.0", "filename": "zephyr.signed.bin",
        "sha256": "030130c604726ff35ba6c2d8f6bf70d7df1b21c628fa8cae5547603dd8b176d5",
        "length": 144564, "collectionId": ref.cid, "created": 1559653611268, "tags": {}}
    assert [i["version"] for i in body["images"]] == ["1.0", "2.0"]
    schemas.ImageList.model_validate(body)


async def test_usage_matches_the_page_example_exactly(client: httpx.AsyncClient,
                                                      ref: Any) -> None:
    r = await client.get(f"/collections/{ref.cid}/firmware/{ref.new}/usage")
    assert r.status_code == 200
    assert r.json() == {"firmwareId": ref.new, "targetedDevices": [ref.device, ref.device2],
                        "currentDevices": []}
    r = await client.get(f"/collections/{ref.cid}/firmware/{ref.old}/usage")
    assert r.json() == {"firmwareId": ref.old, "targetedDevices": [],
                        "currentDevices": [ref.device, ref.device2]}


async def test_patching_the_management_scope_is_refused_and_the_collection_reads_back(
        client: httpx.AsyncClient, ref: Any) -> None:
    r = await client.patch(f"/collections/{ref.cid}",
                           content='{"firmware":{"management": "device"}}')
    assert r.status_code == 405
    assert r.json()["status"] == 405 and "git" in r.json()["message"]
    assert r.headers["allow"] == "GET, HEAD"
    body = (await client.get(f"/collections/{ref.cid}")).json()
    assert_shape(body, {"collectionId": str, "firmware": dict, "tags": dict})
    # Every device reports 1.0, so the collection's currentFirmwareId is that image.
    assert body["firmware"] == {"management": "collection", "targetFirmwareId": ref.new,
                                "currentFirmwareId": ref.old}
    assert body["tags"] == {"name": "fleet"}


async def test_uploading_an_image_is_refused(client: httpx.AsyncClient, ref: Any) -> None:
    r = await client.post(f"/collections/{ref.cid}/firmware",
                          files={"image": ("zephyr.signed.bin", b"\x00" * 64)})
    assert r.status_code == 405 and "git" in r.json()["message"]


async def test_patching_an_image_version_is_refused_and_the_image_reads_back(
        client: httpx.AsyncClient, ref: Any) -> None:
    r = await client.patch(f"/collections/{ref.cid}/firmware/{ref.new}",
                           content='{"version":"1.0"}')
    assert r.status_code == 405
    body = (await client.get(f"/collections/{ref.cid}/firmware/{ref.new}")).json()
    assert_shape(body, IMAGE_KEYS)
    assert body == {
        "imageId": ref.new, "version": "2.0", "filename": "initial-version.signed.bin",
        "sha256": "fc8902c5221bb0cb077f54fbefd53b5a4be970384a1496dbb2b8f99be733dd1d",
        "length": 9250, "collectionId": ref.cid, "created": 1576083823998,
        "tags": {"git": "a1b2c3"}}


async def test_patching_the_target_is_refused_and_devices_show_the_collection_target(
        client: httpx.AsyncClient, ref: Any) -> None:
    r = await client.patch(f"/collections/{ref.cid}",
                           content='{"firmware":{"targetFirmwareId": "17dh0cf43jfgnk" }}')
    assert r.status_code == 405
    body = (await client.get(f"/collections/{ref.cid}/devices/{ref.device}")).json()
    assert_shape(body, {"deviceId": str, "collectionId": str, "tags": dict, "firmware": dict})
    # collection scope: the device shows the collection's target, not its own.
    assert body["firmware"] == {
        "currentFirmwareId": ref.old, "targetFirmwareId": ref.new, "firmwareVersion": "1.0 ",
        "serialNumber": "SN1", "modelNumber": "nrf9160", "manufacturer": "Nordic",
        "state": "Downloading", "stateMessage": "block 12 of 90"}
    schemas.Device.model_validate(body)


async def test_the_device_list_has_every_device_of_the_collection_in_the_device_shape(
        client: httpx.AsyncClient, ref: Any) -> None:
    body = (await client.get(f"/collections/{ref.cid}/devices")).json()
    assert set(body) == {"devices"}
    assert [d["deviceId"] for d in body["devices"]] == [ref.device, ref.device2]
    second = body["devices"][1]
    assert second == {"deviceId": ref.device2, "collectionId": ref.cid,
                      "tags": {"site": "oslo"},
                      "firmware": {"currentFirmwareId": ref.old, "targetFirmwareId": ref.new,
                                   "firmwareVersion": "1.0", "state": "Pending"}}
    schemas.DeviceList.model_validate(body)


async def test_collections_list_and_empty_values_follow_the_page(client: httpx.AsyncClient,
                                                                 ref: Any) -> None:
    body = (await client.get("/collections")).json()
    assert set(body) == {"collections"}
    lab = next(c for c in body["collections"] if c["collectionId"] == ref.other_cid)
    # Unset ids are absent keys; empty tags are {}.
    assert lab == {"collectionId": ref.other_cid, "firmware": {"management": "disabled"},
                   "tags": {}}
    empty = (await client.get(f"/collections/{ref.other_cid}/firmware")).json()
    assert empty == {"images": []}
    schemas.CollectionList.model_validate(body)
