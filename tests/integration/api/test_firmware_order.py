"""`GET /collections/{cid}/firmware` lists images in natural version order, as the model does."""

from __future__ import annotations

from pathlib import Path

import httpx
from builders import desired_state, image

from reconciler.api import create_app
from reconciler.model.desired import Collection, DesiredState
from reconciler.store import open_reader, open_store

CID = "17dh0cf43jfhig"
VERSIONS = {"17dh0cf43jfh01": "1.10.0", "17dh0cf43jfh02": "4.0.0", "17dh0cf43jfh03": "1.2.0",
            "17dh0cf43jfh04": "1.0.0", "17dh0cf43jfh05": "1.9.0", "17dh0cf43jfh06": "1.1.0",
            "17dh0cf43jfh00": "1.2.0"}


def desired() -> DesiredState:
    images = [image(fid, version, CID) for fid, version in VERSIONS.items()]
    return desired_state(Collection(CID), images, revision="abc1234")


async def test_versions_are_listed_naturally_with_ties_broken_by_image_id(
        tmp_path: Path) -> None:
    store = open_store(tmp_path / "fota.db")
    reader = open_reader(tmp_path / "fota.db")
    try:
        store.apply_desired(desired())
        transport = httpx.ASGITransport(app=create_app(reader))
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
            r = await http.get(f"/collections/{CID}/firmware")
        assert r.status_code == 200
        listed = [(i["version"], i["imageId"]) for i in r.json()["images"]]
        assert listed == [("1.0.0", "17dh0cf43jfh04"), ("1.1.0", "17dh0cf43jfh06"),
                          ("1.2.0", "17dh0cf43jfh00"), ("1.2.0", "17dh0cf43jfh03"),
                          ("1.9.0", "17dh0cf43jfh05"), ("1.10.0", "17dh0cf43jfh01"),
                          ("4.0.0", "17dh0cf43jfh02")]
        assert [i.image_id for i in reader.images(CID)] == [
            i.image_id for i in desired().images_of(CID)] == [fid for _, fid in listed]
    finally:
        reader.close()
        store.close()
