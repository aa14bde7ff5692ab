"""Fixtures for the store tests: a small desired snapshot, and a real store of each
engine: `state` (and `store` on it) is a SQLite file and a fresh PostgreSQL database in
turn, so every test written against them holds for both. `db_path` is the SQLite file
alone, for what only a file has (its lock, its WAL, old schema versions)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import collection, desired_state, device, image

from reconciler.model.desired import DesiredState, FirmwareImage, Management
from reconciler.store import SqliteStore, open_store
from reconciler.store.pg import PgStore

CID = "17dh0cf43jfhig"
V1, V2 = "17dh0cf43jfgnk", "17dh0cf43jfh08"


def store_image(image_id: str, version: str, collection_id: str = CID) -> FirmwareImage:
    return image(image_id, version, collection_id, length=9250, created=1576083823998)


def snapshot(devices: int = 3, *, target: str = V2, revision: str = "r1",
             management: Management = Management.COLLECTION,
             own_targets: dict[str, str] | None = None) -> DesiredState:
    own = own_targets or {}
    fleet = [device(f"dev{i:04d}", f"ep-{i}", collection_id=CID, target=own.get(f"dev{i:04d}"))
             for i in range(devices)]
    return desired_state(
        collection(target, collection_id=CID, management=management, tags={"team": "fw"}),
        [store_image(V1, "1.0"), store_image(V2, "2.0")], fleet, revision)


class Fleet:
    """The snapshot builder and its ids, handed to tests as the `fleet` fixture (test
    modules cannot import conftest under importlib import mode)."""

    cid = CID
    v1 = V1
    v2 = V2
    snapshot = staticmethod(snapshot)
    image = staticmethod(store_image)


@pytest.fixture
def fleet() -> type[Fleet]:
    return Fleet


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "fota.db"


ENGINES = ("sqlite", "postgresql")


@pytest.fixture(params=ENGINES)
def state(request: pytest.FixtureRequest, db_path: Path) -> Path | str:
    """Where a store lives: a SQLite file, or a PostgreSQL database's URL."""
    if request.param == "sqlite":
        return db_path
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def store(state: Path | str) -> Iterator[SqliteStore]:
    opened = open_store(state)
    yield opened
    opened.close()


@pytest.fixture
def sqlite_store(db_path: Path) -> Iterator[SqliteStore]:
    opened = open_store(db_path)
    yield opened
    opened.close()


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[PgStore]:
    """A PostgreSQL store alone, for what only that engine has."""
    opened = open_store(pg_url)
    assert isinstance(opened, PgStore)
    yield opened
    opened.close()
