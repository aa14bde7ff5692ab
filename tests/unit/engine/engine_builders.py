"""Shared builders for the engine tests: one collection with two images, one device."""

from __future__ import annotations

from typing import Any

from reconciler.engine import Delta, diff
from reconciler.model.desired import (
    Collection,
    DesiredState,
    Device,
    FirmwareImage,
    Management,
    RolloutPolicy,
)
from reconciler.model.lwm2m import DeliveryMethod, FirmwareState, Registration, UpdateResult
from reconciler.model.observed import DeviceReport

T0 = 1_000_000.0
OLD = FirmwareImage("aaaa1", "c0ll", "1.0", "fw-1.0.bin", "a" * 64, 4096, 1, "images/1.bin")
NEW = FirmwareImage("bbbb2", "c0ll", "2.0", "fw-2.0.bin", "b" * 64, 4096, 2, "images/2.bin")


def desired(
    management: Management = Management.COLLECTION,
    target: str | None = NEW.image_id,
    device_target: str | None = None,
    rollout: RolloutPolicy | None = None,
) -> DesiredState:
    coll = Collection("c0ll", "fleet", management, target, {}, rollout or RolloutPolicy())
    dev = Device("d1", "c0ll", "ep-1", device_target)
    return DesiredState(
        revision="rev1",
        collections={"c0ll": coll},
        images={OLD.image_id: OLD, NEW.image_id: NEW},
        devices={"d1": dev},
    )


def registration(at: float = T0, queue: bool = False) -> Registration:
    return Registration(
        registration_id="r1", endpoint="ep-1", host="127.0.0.1", port=5700, lifetime=300,
        lwm2m_version="1.1", binding="UQ" if queue else "U", queue_mode=queue,
        object_links=("/3/0", "/5/0"), registered_at=at, updated_at=at,
    )


def report(
    version: str = "1.0",
    fw: FirmwareState = FirmwareState.IDLE,
    result: UpdateResult = UpdateResult.INITIAL,
    at: float = T0 + 1,
    delivery: DeliveryMethod = DeliveryMethod.PULL_ONLY,
) -> DeviceReport:
    return DeviceReport(
        endpoint="ep-1", firmware_version=version, fw_state=fw, update_result=result,
        delivery_method=delivery, reported_at=at,
    )


def delta(
    state: DesiredState | None = None,
    rep: DeviceReport | None = None,
    reg: Registration | None = None,
    **flags: Any,
) -> Delta:
    return diff(state or desired(), "d1", rep, reg, **flags)
