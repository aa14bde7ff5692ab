"""Response schemas with the reference FOTA API's field names, for /docs and for tests.

The routes serialise plain dicts straight to JSON bytes (see `render.py`) and declare these
models only as documentation, so a 10,000-device list never goes through per-item
validation. Unset ids and never-reported values are left out (absent keys), as the
reference does for `currentFirmwareId`; `tags` is always an object and lists always arrays.
`extra="forbid"` lets the tests check that every rendered body matches its schema exactly.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import SkipJsonSchema

from reconciler.model.desired import Management
from reconciler.model.status import ConditionType, UpdateState

Absent = SkipJsonSchema[None]  # optional key: either present with a value, or left out


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Error(Schema):
    status: int
    message: str


class CollectionFirmware(Schema):
    management: Management
    targetFirmwareId: str | Absent = None
    currentFirmwareId: str | Absent = None


class Collection(Schema):
    collectionId: str
    firmware: CollectionFirmware
    tags: dict[str, str]


class CollectionList(Schema):
    collections: list[Collection]


class Image(Schema):
    imageId: str
    version: str
    filename: str
    sha256: str
    length: int
    collectionId: str
    created: int  # milliseconds since the epoch
    tags: dict[str, str]


class ImageList(Schema):
    images: list[Image]


class Usage(Schema):
    firmwareId: str
    targetedDevices: list[str]
    currentDevices: list[str]


class DeviceFirmware(Schema):
    currentFirmwareId: str | Absent = None
    targetFirmwareId: str | Absent = None
    firmwareVersion: str | Absent = None
    serialNumber: str | Absent = None
    modelNumber: str | Absent = None
    manufacturer: str | Absent = None
    state: UpdateState | Absent = None
    stateMessage: str | Absent = None


class Device(Schema):
    deviceId: str
    collectionId: str
    tags: dict[str, str]
    firmware: DeviceFirmware


class DeviceList(Schema):
    devices: list[Device]


class ConditionOut(Schema):
    type: ConditionType
    status: bool
    reason: str
    message: str
    lastTransitionTime: int  # milliseconds since the epoch
    revision: str


class EventOut(Schema):
    at: int  # milliseconds since the epoch
    kind: str
    message: str
    revision: str


class LoggedEvent(Schema):
    """One event of the feed (/status/events, and the data of each /events message)."""

    id: int  # the feed's cursor: Last-Event-ID, or `since` of the next page
    deviceId: str  # "" for a collection's `rollout` event (a halt, a resume)
    collectionId: str | Absent = None  # the device's collection when it was written
    at: int  # milliseconds since the epoch
    kind: str
    message: str
    revision: str


class EventPage(Schema):
    events: list[LoggedEvent]  # oldest first
    next: int  # pass as `since` for the following page
    # The log keeps every event after prunedThrough (older ones go by age and count,
    # a device's newest 100 stay): `since` below it may have missed events (gap).
    prunedThrough: int
    gap: bool


class DeviceStatus(Schema):
    deviceId: str
    collectionId: str
    firmware: DeviceFirmware
    conditions: list[ConditionOut]
    events: list[EventOut]  # the most recent, oldest first


class SourceOut(Schema):
    url: str | Absent = None
    branch: str | Absent = None
    appliedRevision: str | Absent = None
    headRevision: str | Absent = None
    lastSync: int | Absent = None  # milliseconds since the epoch
    errors: list[str]  # "file:line: field: message" when the newest commit is invalid
    # "degraded: head abc123 invalid, running def456" while the head is not applied
    degraded: str | Absent = None


class CollectionStatusOut(Schema):
    collectionId: str
    management: Management
    targetFirmwareId: str | Absent = None
    devices: int
    states: dict[str, int]  # firmware.state -> number of devices in it
    halted: bool
    haltReason: str | Absent = None
    rollout: dict[str, Any]  # the controller's rollout figures (in flight, failed, ...)
    conditions: list[ConditionOut]


class RestartOut(Schema):
    """What the running server restored from the state file when it started."""

    startedAt: int  # milliseconds since the epoch
    restoredRegistrations: int  # devices resumed at once, without waiting for an Update
    restoredOffers: int  # package URIs that kept serving across the restart


class AdmissionOut(Schema):
    undeclaredEndpoints: int  # distinct endpoints refused (4.03) since the server started
    firstUndeclared: str
    message: str  # "12 undeclared endpoints tried to register; first: urn:imei:..."


class ListenersOut(Schema):
    """The LwM2M listeners this run serves, HOST:PORT as bound; null: not running
    (`fota serve --coap off` runs CoAPs only)."""

    coap: str | None  # plain CoAP
    coaps: str | None  # CoAPs (DTLS-PSK)


class DtlsOut(Schema):
    """The CoAPs (DTLS-PSK) listener since start: sessions now, handshakes and why
    sessions ended."""

    sessions: int  # established now
    handshaking: int  # handshakes in progress now (past the cookie check)
    handshakes: int  # completed
    handshakeFailures: int  # refused (unknown identity) or never finished
    handshakesRefused: int  # ClientHellos dropped while the handshake cap was reached
    cookiesSent: int  # HelloVerifyRequests (stateless)
    replacedSessions: int  # a new handshake from an address with a session (a reboot)
    evictedSessions: int  # over the per-identity cap (the least recently heard)
    expiredSessions: int  # idle past the timeout
    revokedSessions: int  # the identity's credential was removed or changed
    unknownIdentities: int  # key lookups for identities not in the credentials
    rebindings: int  # Updates in another session than the registration's (NAT rebinding)
    closedSessions: int  # ended by the peer (close_notify or a fatal alert)
    refusedIdentityMismatch: int  # Register as another endpoint than the identity's
    refusedPlainCoap: int  # plain CoAP from an endpoint that requires PSK
    refusedSecurityContext: int  # Update/De-register from another security context
    refusedPlainFirmware: int  # a secured device's firmware asked over plain CoAP
    awaitingSession: int  # restored after our restart, waiting for the device's session
    resumedSessions: int  # of those, back with an Update in a new session


class CredentialsOut(Schema):
    """The PSK credentials file `fota serve --credentials` reloads (never a key)."""

    path: str
    count: int  # credentials in the set in use
    loadedAt: int | None  # milliseconds since the epoch of the set in use
    reloads: int  # good reloads since the start
    lastReason: str  # start, SIGHUP or file changed
    error: str | Absent = None  # while the file is bad: its first problem, file:line
    errorAt: int | Absent = None


class NotificationOut(Schema):
    sent: int = 0
    dropped: int = 0  # full queue, past the deadline, or refused (4xx) by the receiver
    retries: int = 0
    queued: int = 0
    failing: bool = False
    lastError: str | Absent = None
    error: str | Absent = None  # why the provider is not running (a missing variable)


class Status(Schema):
    appliedRevision: str | Absent = None
    source: SourceOut
    restart: RestartOut | Absent = None  # absent until the controller has started
    admission: AdmissionOut | Absent = None  # absent until an undeclared endpoint tried
    listeners: ListenersOut | Absent = None  # absent until the LwM2M server started
    dtls: DtlsOut | Absent = None  # absent without a CoAPs listener
    credentials: CredentialsOut | Absent = None  # absent without --credentials
    notifications: dict[str, NotificationOut] | Absent = None  # per provider, if any
    collections: list[CollectionStatusOut]


class Health(Schema):
    status: str
    appliedRevision: str | Absent = None
    degraded: str | Absent = None  # as in /status: serving the last good revision
