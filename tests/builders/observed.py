"""What a device reports and how it registered, for tests (endpoint "ep-1" by default)."""

from __future__ import annotations

from reconciler.model.lwm2m import DeliveryMethod, FirmwareState, Registration, UpdateResult
from reconciler.model.observed import DeviceReport

T0 = 1_000_000.0  # the tests' epoch: registrations and reports happen around it


def registration(at: float = T0, queue: bool = False, endpoint: str = "ep-1") -> Registration:
    return Registration(
        registration_id="r1", endpoint=endpoint, host="127.0.0.1", port=5700, lifetime=300,
        lwm2m_version="1.1", binding="UQ" if queue else "U", queue_mode=queue,
        object_links=("/3/0", "/5/0"), registered_at=at, updated_at=at,
    )


def report(
    version: str = "1.0",
    fw: FirmwareState = FirmwareState.IDLE,
    result: UpdateResult = UpdateResult.INITIAL,
    at: float = T0 + 1,
    delivery: DeliveryMethod = DeliveryMethod.PULL_ONLY,
    endpoint: str = "ep-1",
) -> DeviceReport:
    return DeviceReport(
        endpoint=endpoint, firmware_version=version, fw_state=fw, update_result=result,
        delivery_method=delivery, reported_at=at,
    )
