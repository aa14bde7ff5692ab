"""A store for the dashboard's tests: one collection of `count` devices (ids d000000..),
every fifth on the target and reported Current, every seventh Downloading, the rest
Pending; tags site=s0..s2. Built with the real writer, read with the real reader."""

from __future__ import annotations

from pathlib import Path

from reconciler.model.desired import Collection, DesiredState, Device, FirmwareImage, Management
from reconciler.model.observed import DeviceProgress, DeviceReport
from reconciler.model.status import UpdateState
from reconciler.store import SqliteStore, open_store

CID, OLD, NEW = "c0ll00", "1m1000", "1m2000"


def device_id(n: int) -> str:
    return f"d{n:06d}"


def desired(count: int) -> DesiredState:
    images = {iid: FirmwareImage(iid, CID, version, f"{version}.bin", "ab" * 32, 1024,
                                 1_700_000_000_000, f"images/{version}.bin")
              for iid, version in ((OLD, "1.0"), (NEW, "2.0"))}
    devices = {device_id(n): Device(device_id(n), CID, f"urn:dev:{n}",
                                    tags={"site": f"s{n % 3}"}) for n in range(count)}
    collections = {CID: Collection(CID, "trackers", Management.COLLECTION, NEW)}
    return DesiredState("a1b2c3d4e5f6a7b8", collections, images, devices)


def fleet_store(path: Path, count: int) -> SqliteStore:
    store = open_store(path)
    store.apply_desired(desired(count))
    for n in range(count):
        version = "2.0" if n % 5 == 0 else "1.0"
        store.put_report(device_id(n), DeviceReport(f"urn:dev:{n}", firmware_version=version))
        if n % 7 == 0 and n % 5:
            store.put_progress(DeviceProgress(device_id(n), NEW, UpdateState.DOWNLOADING,
                                              "block 3 of 9", attempts=1))
    return store
