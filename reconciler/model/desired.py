"""The desired state: one immutable snapshot of `manifests/` at a git revision.

Built by `reconciler.sources` after validation; read by the engine (diff/plan), the
controller, the firmware server (image bytes by path) and, through the store, the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from reconciler.model.notify import NO_NOTIFICATIONS, Notifications
from reconciler.model.versions import image_order


class Management(StrEnum):
    """Who decides a device's target, exactly as the reference's management scope."""

    DEVICE = "device"
    COLLECTION = "collection"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class FailureThreshold:
    """Halt new starts once this many devices (count) or this share (percent) of the
    rollout's population (the devices it has to update, as hawkBit's error threshold)
    ended in a terminal failure. A share of *started* updates would halt a 100,000-device
    rollout on its first failure."""

    count: int | None = None
    percent: float | None = None

    def exceeded(self, failed: int, population: int) -> bool:
        if self.count is not None and failed >= self.count:
            return True
        if self.percent is not None and population > 0 and failed > 0:
            return failed * 100.0 / population >= self.percent
        return False

    def __str__(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else str(self.count)


class SecurityMode(StrEnum):
    """What a device must use to talk to the LwM2M server (manifest key `security`)."""

    PSK = "psk"  # DTLS with a pre-shared key whose identity is bound to the endpoint
    NONE = "none"  # plain CoAP allowed (DTLS with the endpoint's own identity too)


class WindowGate(StrEnum):
    """What a maintenance window gates: starting a download, sending Execute, or both."""

    DOWNLOAD = "download"
    EXECUTE = "execute"
    BOTH = "both"

    def gates(self, step: WindowGate) -> bool:
        """Whether this window holds `step` (DOWNLOAD or EXECUTE) outside its hours."""
        return self is WindowGate.BOTH or self is step


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """Hours in which a gated step may run: each time `cron` fires in `time_zone`, for
    `duration` seconds. Only for devices whose tags include all of `tags`."""

    name: str
    cron: str
    duration: float  # seconds
    time_zone: str  # an IANA name, e.g. Europe/Oslo
    gates: WindowGate = WindowGate.EXECUTE
    tags: Mapping[str, str] = field(default_factory=dict)

    def applies_to(self, device_tags: Mapping[str, str]) -> bool:
        return all(device_tags.get(k) == v for k, v in self.tags.items())


class DriftPolicy(StrEnum):
    """What the controller does with a device that left the target it had reached."""

    CORRECT = "correct"  # update it again, as for any device not on its target
    REPORT = "report"  # only say so (a Drifted condition); never touch it


@dataclass(frozen=True, slots=True)
class Wave:
    """One stage of a rollout: the devices its selector takes (tags, all must match, and
    a share of those, by a stable hash: `engine.waves`), the gate it must pass before the
    next wave starts, and how long to soak after its last device became Current."""

    name: str
    tags: tuple[tuple[str, str], ...] = ()  # sorted (key, value) pairs; () = any device
    share: float | None = None  # percent of the devices the tags select; None = all
    soak: float = 0.0  # seconds after the wave's last member became Current
    min_success: float | None = None  # percent of the wave Current for the gate
    failure_threshold: FailureThreshold | None = None  # failed in the wave: halt

    def selects(self, tags: Mapping[str, str]) -> bool:
        return all(tags.get(key) == value for key, value in self.tags)


@dataclass(frozen=True, slots=True)
class RolloutPolicy:
    """Rollout guards declared beside a collection's target."""

    max_concurrent: int | None = None
    failure_threshold: FailureThreshold | None = None
    paused: bool = False
    windows: tuple[MaintenanceWindow, ...] = ()  # several: any one open allows the step
    # Raised in a commit: failed devices get a fresh retry budget (per device: `Device`).
    retry: int = 0
    waves: tuple[Wave, ...] = ()  # ordered; devices no wave selects form a last wave


@dataclass(frozen=True, slots=True)
class FirmwareImage:
    image_id: str
    collection_id: str
    version: str
    filename: str
    sha256: str
    length: int
    created: int  # milliseconds since the epoch
    path: str  # repo-relative path of the binary, under images/
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Collection:
    collection_id: str
    name: str = ""
    management: Management = Management.DISABLED
    target_image_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    rollout: RolloutPolicy = field(default_factory=RolloutPolicy)
    drift_policy: DriftPolicy = DriftPolicy.CORRECT
    security: SecurityMode | None = None  # None: the server's `--security-default`


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    collection_id: str
    endpoint: str  # LwM2M endpoint client name
    target_image_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    retry: int = 0  # raised in a commit: this device gets a fresh retry budget
    # None: its collection's, else the server's. Not compared: it changes who may
    # register, never what the engine decides, so a change retargets no device (and
    # `fota plan` does not count it as one).
    security: SecurityMode | None = field(default=None, compare=False)


@dataclass(frozen=True)
class DesiredState:
    """A validated snapshot. Mappings are keyed by id; indices are derived once."""

    revision: str
    collections: Mapping[str, Collection]
    images: Mapping[str, FirmwareImage]
    devices: Mapping[str, Device]
    notifications: Notifications = NO_NOTIFICATIONS  # manifests/notifications.yaml
    _by_endpoint: Mapping[str, Device] = field(init=False, repr=False, compare=False)
    _by_version: Mapping[tuple[str, str], FirmwareImage] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        by_endpoint = {d.endpoint: d for d in self.devices.values()}
        by_version = {(i.collection_id, i.version): i for i in self.images.values()}
        object.__setattr__(self, "_by_endpoint", MappingProxyType(by_endpoint))
        object.__setattr__(self, "_by_version", MappingProxyType(by_version))

    @classmethod
    def empty(cls, revision: str = "") -> DesiredState:
        return cls(revision=revision, collections={}, images={}, devices={})

    def device_by_endpoint(self, endpoint: str) -> Device | None:
        return self._by_endpoint.get(endpoint)

    def image_by_version(self, collection_id: str, version: str) -> FirmwareImage | None:
        """The image of this collection whose version equals `version` (trimmed)."""
        return self._by_version.get((collection_id, version.strip()))

    def images_of(self, collection_id: str) -> list[FirmwareImage]:
        """The collection's images in natural version order, as the API lists them."""
        found = [i for i in self.images.values() if i.collection_id == collection_id]
        return sorted(found, key=image_order)

    def management_of(self, device: Device) -> Management:
        collection = self.collections.get(device.collection_id)
        return collection.management if collection else Management.DISABLED

    def effective_target(self, device: Device) -> str | None:
        """The image id the controller drives this device to, or None for hands off.

        `collection` -> the collection's target, `device` -> the device's own target,
        `disabled` -> None, exactly as the reference's management scope."""
        collection = self.collections.get(device.collection_id)
        if collection is None or collection.management is Management.DISABLED:
            return None
        if collection.management is Management.COLLECTION:
            return collection.target_image_id
        return device.target_image_id

    def security_of(self, device: Device) -> SecurityMode | None:
        """The device's own `security`, else its collection's; None leaves the choice to
        the server's default (`reconciler.security.policy`)."""
        if device.security is not None:
            return device.security
        collection = self.collections.get(device.collection_id)
        return collection.security if collection else None

    def retry_of(self, device: Device) -> int:
        """The device's retry counter: its own plus its collection's. Either raised in a
        commit retries the device once (the controller keeps the last one it saw)."""
        collection = self.collections.get(device.collection_id)
        return device.retry + (collection.rollout.retry if collection else 0)


def revision_affects(old: DesiredState, new: DesiredState, device_id: str) -> bool:
    """Whether going from `old` to `new` changes anything the engine decides by for this
    device (of `new`): its record, effective target, management, or collection's rollout
    or drift policy.
    The controller retargets exactly these; `fota plan --base` calls them the change."""
    before, after = old.devices.get(device_id), new.devices[device_id]
    if before is None or before != after:
        return True
    if old.effective_target(before) != new.effective_target(after):
        return True
    if old.management_of(before) != new.management_of(after):
        return True
    was = old.collections.get(before.collection_id)
    now = new.collections.get(after.collection_id)
    return ((was.rollout, was.drift_policy) if was else None) != (
        (now.rollout, now.drift_policy) if now else None)
