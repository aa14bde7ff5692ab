"""Pure conversions between the model's frozen values and SQLite rows.

Column order here matches the `INSERT` statements in `writer.py` and the `SELECT`s in
`writer.py`/`reader.py`; keep the three in step. Tags and other mappings are stored as
compact, key-sorted JSON so equal values give equal text (the desired-state diff relies
on that to skip unchanged rows).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any

from reconciler.model.desired import Collection, DesiredState, Device, FirmwareImage, Management
from reconciler.model.lwm2m import (
    NO_FORMATS,
    ContentFormats,
    DeliveryMethod,
    FirmwareOffer,
    FirmwareState,
    PushPosition,
    Registration,
    UpdateResult,
)
from reconciler.model.observed import DeviceEvent, DeviceProgress, DeviceReport
from reconciler.model.status import Condition, ConditionType, UpdateState

Row = tuple[Any, ...]


def dump_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def load_tags(text: str) -> dict[str, str]:
    loaded = json.loads(text)
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


def _plain(value: object) -> object:
    """A frozen value as JSON data. Not `asdict`: it deep-copies what is not a dataclass,
    and a read-only mapping (a window's tags) cannot be copied."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def collection_row(c: Collection) -> Row:
    rollout = _plain(c.rollout)
    return (c.collection_id, c.name, c.management.value, c.target_image_id,
            dump_json(dict(c.tags)), dump_json(rollout))


def image_row(i: FirmwareImage) -> Row:
    return (i.image_id, i.collection_id, i.version, i.filename, i.sha256, i.length,
            i.created, i.path, dump_json(dict(i.tags)))


def image_from_row(r: Row) -> FirmwareImage:
    return FirmwareImage(image_id=r[0], collection_id=r[1], version=r[2], filename=r[3],
                         sha256=r[4], length=r[5], created=r[6], path=r[7],
                         tags=load_tags(r[8]))


def device_row(desired: DesiredState, d: Device, reported: Mapping[str, str]) -> Row:
    """(device_id, collection_id, endpoint, own target, effective target, current, tags)."""
    version = reported.get(d.device_id)
    image = desired.image_by_version(d.collection_id, version) if version is not None else None
    return (d.device_id, d.collection_id, d.endpoint, d.target_image_id,
            desired.effective_target(d), image.image_id if image else None,
            dump_json(dict(d.tags)))


def management_of(text: str) -> Management:
    try:
        return Management(text)
    except ValueError:
        return Management.DISABLED


def registration_row(r: Registration, formats: ContentFormats = NO_FORMATS) -> Row:
    return (r.endpoint, r.registration_id, r.host, r.port, r.lifetime, r.lwm2m_version,
            r.binding, int(r.queue_mode), json.dumps(list(r.object_links)),
            r.registered_at, r.updated_at, formats.announced, formats.read, int(r.secured))


def registration_from_row(r: Row) -> Registration:
    return Registration(endpoint=r[0], registration_id=r[1], host=r[2], port=r[3],
                        lifetime=r[4], lwm2m_version=r[5], binding=r[6],
                        queue_mode=bool(r[7]), object_links=tuple(json.loads(r[8])),
                        registered_at=r[9], updated_at=r[10], secured=bool(r[13]))


def formats_from_row(r: Row) -> ContentFormats:
    """The formats stored beside a registration (the row's last two columns)."""
    return ContentFormats(announced=r[11], read=r[12])


def offer_row(o: FirmwareOffer) -> Row:
    return (o.token, o.endpoint, o.image_id, o.expires_at)


def offer_from_row(r: Row) -> FirmwareOffer:
    return FirmwareOffer(token=r[0], endpoint=r[1], image_id=r[2], expires_at=r[3])


def push_position_row(p: PushPosition) -> Row:
    return (p.endpoint, p.image_id, p.digest, p.size, p.szx, p.offset, p.at)


def push_position_from_row(r: Row) -> PushPosition:
    return PushPosition(endpoint=r[0], image_id=r[1], digest=r[2], size=int(r[3]),
                        szx=int(r[4]), offset=int(r[5]), at=float(r[6]))


def report_row(device_id: str, r: DeviceReport) -> Row:
    return (device_id, r.endpoint, r.firmware_version, r.serial_number, r.model_number,
            r.manufacturer, _int(r.fw_state), _int(r.update_result),
            _int(r.delivery_method), r.reported_at)


def report_from_row(r: Row) -> DeviceReport:
    return DeviceReport(
        endpoint=r[1], firmware_version=r[2], serial_number=r[3], model_number=r[4],
        manufacturer=r[5],
        fw_state=None if r[6] is None else FirmwareState(r[6]),
        update_result=None if r[7] is None else UpdateResult(r[7]),
        delivery_method=None if r[8] is None else DeliveryMethod(r[8]),
        reported_at=r[9])


def progress_row(p: DeviceProgress) -> Row:
    return (p.device_id, p.target_image_id, p.state.value, p.message, p.attempts,
            p.retries_left,
            p.phase_started_at, p.deadline, p.next_attempt_at, p.executed_at, p.updated_at,
            p.resets, p.probes, p.executes, p.drift, p.retry, p.resumes, p.pushed_at)


def progress_from_row(r: Row) -> DeviceProgress:
    return DeviceProgress(
        device_id=r[0], target_image_id=r[1], state=UpdateState(r[2]), message=r[3],
        attempts=r[4], retries_left=r[5], phase_started_at=r[6], deadline=r[7],
        next_attempt_at=r[8], executed_at=r[9], updated_at=r[10], resets=r[11],
        probes=r[12], executes=r[13], drift=r[14], retry=r[15], resumes=r[16],
        pushed_at=r[17])


def event_row(e: DeviceEvent) -> Row:
    return (e.device_id, e.at, e.kind, e.message, e.revision)


def event_from_row(r: Row) -> DeviceEvent:
    return DeviceEvent(device_id=r[0], at=r[1], kind=r[2], message=r[3], revision=r[4])


def condition_row(subject: str, c: Condition) -> Row:
    return (subject, c.type.value, int(c.status), c.reason, c.message, c.last_transition,
            c.revision)


def condition_from_row(r: Row) -> Condition:
    return Condition(type=ConditionType(r[0]), status=bool(r[1]), reason=r[2],
                     message=r[3], last_transition=r[4], revision=r[5])


def _int(value: int | None) -> int | None:
    return None if value is None else int(value)
