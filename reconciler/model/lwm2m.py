"""LwM2M protocol values that cross layers: paths, Object 5 enums, registrations.

The lwm2m package produces `Registration` and `RegistrationEvent` values; the controller,
engine and store consume them. Object 5 enums tolerate codes newer specs may add.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any


@dataclass(frozen=True, slots=True, order=True)
class Path:
    """An LwM2M path /object[/instance[/resource[/resource-instance]]]."""

    object_id: int
    instance: int | None = None
    resource: int | None = None
    resource_instance: int | None = None

    @classmethod
    def parse(cls, text: str) -> Path:
        parts = [p for p in text.strip("/").split("/") if p != ""]
        if not 1 <= len(parts) <= 4 or not all(p.isdigit() for p in parts):
            raise ValueError(f"not an LwM2M path: {text!r}")
        numbers = [int(p) for p in parts]
        if any(n > 65535 for n in numbers):
            raise ValueError(f"LwM2M path component out of range: {text!r}")
        return cls(*numbers)

    def segments(self) -> tuple[int, ...]:
        values = (self.object_id, self.instance, self.resource, self.resource_instance)
        return tuple(v for v in values if v is not None)

    def __str__(self) -> str:
        return "/" + "/".join(str(s) for s in self.segments())


# Well-known resources the controller reads and writes.
FW_PACKAGE = Path(5, 0, 0)
FW_PACKAGE_URI = Path(5, 0, 1)
FW_UPDATE = Path(5, 0, 2)
FW_STATE = Path(5, 0, 3)
FW_UPDATE_RESULT = Path(5, 0, 5)
FW_DELIVERY_METHOD = Path(5, 0, 9)
DEV_MANUFACTURER = Path(3, 0, 0)
DEV_MODEL = Path(3, 0, 1)
DEV_SERIAL = Path(3, 0, 2)
DEV_FIRMWARE_VERSION = Path(3, 0, 3)


class _TolerantIntEnum(IntEnum):
    """An IntEnum that turns an unknown code into a pseudo-member instead of raising,
    so a device on a newer spec revision never crashes the controller."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, int):
            return None
        member = int.__new__(cls, value)
        member._name_ = f"UNKNOWN_{value}"
        member._value_ = value
        return member


class FirmwareState(_TolerantIntEnum):
    """/5/0/3 State."""

    IDLE = 0
    DOWNLOADING = 1
    DOWNLOADED = 2
    UPDATING = 3


class UpdateResult(_TolerantIntEnum):
    """/5/0/5 Update Result."""

    INITIAL = 0
    SUCCESS = 1
    NOT_ENOUGH_FLASH = 2
    OUT_OF_RAM = 3
    CONNECTION_LOST = 4
    INTEGRITY_CHECK_FAILURE = 5
    UNSUPPORTED_PACKAGE_TYPE = 6
    INVALID_URI = 7
    UPDATE_FAILED = 8
    UNSUPPORTED_PROTOCOL = 9


class DeliveryMethod(_TolerantIntEnum):
    """/5/0/9 Firmware Update Delivery Method."""

    PULL_ONLY = 0
    PUSH_ONLY = 1
    BOTH = 2


@dataclass(frozen=True, slots=True)
class Registration:
    """What the registration interface knows of one registered client."""

    registration_id: str  # the `<id>` in Location-Path rd/<id>
    endpoint: str
    host: str  # source address the device registered from; requests go there
    port: int
    lifetime: int  # seconds
    lwm2m_version: str  # "1.0", "1.1", "1.2"
    binding: str  # "U", "UQ", "S", ...
    queue_mode: bool  # binding contains Q (1.0) or the Q parameter (1.1+)
    object_links: tuple[str, ...]  # e.g. ("/1/0", "/3/0", "/5/0")
    registered_at: float  # seconds since the epoch
    updated_at: float
    # Made inside a DTLS session: requests reach the device only through one (never as
    # plain CoAP to its address), so after our restart it waits for the device's next one.
    secured: bool = False

    @property
    def expires_at(self) -> float:
        return self.updated_at + self.lifetime


@dataclass(frozen=True, slots=True)
class ContentFormats:
    """What a device told us about content formats, kept with its registration so a
    restarted server asks it right the first time."""

    announced: int | None = None  # the `ct` of its 1.2 root link
    read: int | None = None  # the format its reads last accepted (None: not known)


NO_FORMATS = ContentFormats()  # nothing known yet


@dataclass(frozen=True, slots=True)
class FirmwareOffer:
    """A package URI handed to one device: `/fw/<token>` serves image `image_id` to
    whoever holds the token until `expires_at`. A small record: the bytes are looked up
    by image id, so the record is what a restart (or a second node) needs to keep
    serving the same URI."""

    token: str
    endpoint: str
    image_id: str
    expires_at: float  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class PushPosition:
    """How far a push of a package to /5/0/0 came: the bytes the device acknowledged
    with 2.31 (whole blocks of `1 << (szx + 4)` bytes) of the image `image_id` whose
    sha256 is `digest`. What a restart needs to resume the push there instead of at
    block 0 (`lwm2m.pushes` notes it, the store keeps it); used only for a push of the
    same image with the same digest and length."""

    endpoint: str
    image_id: str
    digest: str  # the image's sha256 (hex), as the desired state names it
    size: int  # the package's length in bytes
    szx: int  # the block size exponent in use (the device may ask for smaller blocks)
    offset: int  # bytes acknowledged: the next block starts here
    at: float  # when this position was noted (seconds since the epoch)

    @property
    def block(self) -> int:
        """The next block to send, at the block size in use."""
        return self.offset >> (self.szx + 4)


class RegistrationEventKind(StrEnum):
    REGISTERED = "registered"
    UPDATED = "updated"
    DEREGISTERED = "deregistered"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class RegistrationEvent:
    kind: RegistrationEventKind
    registration: Registration
    at: float = field(default=0.0)
