"""Desired-state values for tests: one collection "c0ll" with an OLD (1.0) and a NEW (2.0)
image, and devices "d1"/"ep-1" unless a test says otherwise. Every field a test does not
name gets one fixed, valid value, so each test states only what it is about."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from reconciler.model.desired import (
    Collection,
    DesiredState,
    Device,
    FirmwareImage,
    Management,
    RolloutPolicy,
)

CID = "c0ll"


def image(image_id: str, version: str, collection_id: str = CID, *, length: int = 4096,
          created: int = 1, tags: Mapping[str, str] | None = None) -> FirmwareImage:
    """An image whose file name, path and sha256 follow from its id and version."""
    filename = f"fw-{version}.bin"
    return FirmwareImage(image_id, collection_id, version, filename,
                         hashlib.sha256(image_id.encode()).hexdigest(), length, created,
                         f"images/{filename}", tags or {})


OLD = image("aaaa1", "1.0", created=1)
NEW = image("bbbb2", "2.0", created=2)


def collection(target: str | None = NEW.image_id, *, collection_id: str = CID,
               management: Management = Management.COLLECTION,
               rollout: RolloutPolicy | None = None, name: str = "fleet",
               tags: Mapping[str, str] | None = None) -> Collection:
    return Collection(collection_id, name, management, target, tags or {},
                      rollout or RolloutPolicy())


def device(device_id: str = "d1", endpoint: str | None = None, *,
           collection_id: str = CID, target: str | None = None,
           tags: Mapping[str, str] | None = None, retry: int = 0) -> Device:
    """A device; its endpoint is "ep-<n>" for a device "d<n>" unless given."""
    return Device(device_id, collection_id, endpoint or f"ep-{device_id.lstrip('d')}",
                  target, tags or {}, retry)


def desired_state(collections: Collection | Iterable[Collection] = (),
                  images: Iterable[FirmwareImage] = (OLD, NEW),
                  devices: Iterable[Device] = (), revision: str = "rev1") -> DesiredState:
    """A snapshot keyed by ids (one collection may be passed bare)."""
    colls = [collections] if isinstance(collections, Collection) else list(collections)
    return DesiredState(revision, {c.collection_id: c for c in colls},
                        {i.image_id: i for i in images}, {d.device_id: d for d in devices})


def one_device(management: Management = Management.COLLECTION,
               target: str | None = NEW.image_id, device_target: str | None = None,
               rollout: RolloutPolicy | None = None) -> DesiredState:
    """Device "d1" in the collection, both images known."""
    return desired_state(collection(target, management=management, rollout=rollout),
                         devices=[device(target=device_target)])
