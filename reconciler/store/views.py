"""What the read-only store returns: frozen values shaped for the API, not for the wire.

Built by `reader.py` from SQL rows; the API maps them onto the reference's JSON shapes.
Unset ids and never-reported values are None (the API leaves such keys out).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.model.desired import Management


@dataclass(frozen=True, slots=True)
class CollectionView:
    collection_id: str
    name: str
    management: Management
    target_image_id: str | None
    current_image_id: str | None  # the image every device of the collection reports
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeviceView:
    device_id: str
    collection_id: str
    tags: Mapping[str, str]
    current_image_id: str | None
    target_image_id: str | None  # effective target: management scope applied
    firmware_version: str | None
    serial_number: str | None
    model_number: str | None
    manufacturer: str | None
    state: str | None  # UpdateState value; None when nothing is targeted
    state_message: str | None
    drift: str | None = None  # "runs 1.0, should run 2.0" while Drifted (engine.drift)


@dataclass(frozen=True, slots=True)
class DevicePage:
    devices: list[DeviceView]
    resume_after: str | None  # the cursor of the next page; None: this was the last


@dataclass(frozen=True, slots=True)
class Usage:
    firmware_id: str
    targeted: list[str]
    current: list[str]


@dataclass(frozen=True, slots=True)
class CollectionStatus:
    collection_id: str
    management: Management
    target_image_id: str | None
    devices: int
    counts: Mapping[str, int]  # UpdateState value -> devices in it
    rollout: Mapping[str, object]  # what the controller last wrote (halt reason, ...)
