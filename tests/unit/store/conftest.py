"""Fixtures for the store tests: a small desired snapshot and a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.model.desired import Collection, DesiredState, Device, FirmwareImage, Management
from reconciler.store import SqliteStore, open_store

CID = "17dh0cf43jfhig"
V1, V2 = "17dh0cf43jfgnk", "17dh0cf43jfh08"


def image(image_id: str, version: str, collection_id: str = CID) -> FirmwareImage:
    return FirmwareImage(image_id=image_id, collection_id=collection_id, version=version,
                         filename=f"fw-{version}.bin", sha256=image_id * 4, length=9250,
                         created=1576083823998, path=f"images/fw-{version}.bin")


def snapshot(devices: int = 3, *, target: str = V2, revision: str = "r1",
             management: Management = Management.COLLECTION,
             own_targets: dict[str, str] | None = None) -> DesiredState:
    own = own_targets or {}
    collection = Collection(CID, name="fleet", management=management,
                            target_image_id=target, tags={"team": "fw"})
    fleet = {f"dev{i:04d}": Device(f"dev{i:04d}", CID, f"ep-{i}",
                                   target_image_id=own.get(f"dev{i:04d}"))
             for i in range(devices)}
    return DesiredState(revision=revision, collections={CID: collection},
                        images={V1: image(V1, "1.0"), V2: image(V2, "2.0")}, devices=fleet)


class Fleet:
    """The snapshot builder and its ids, handed to tests as the `fleet` fixture (test
    modules cannot import conftest under importlib import mode)."""

    cid = CID
    v1 = V1
    v2 = V2
    snapshot = staticmethod(snapshot)
    image = staticmethod(image)


@pytest.fixture
def fleet() -> type[Fleet]:
    return Fleet


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "fota.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStore]:
    opened = open_store(db_path)
    yield opened
    opened.close()
