"""Pure mapping of the store's views onto the reference JSON shapes, straight to bytes.

Dicts are built without None values (unset ids are absent keys) and serialised by
pydantic-core's `to_json`, never through `jsonable_encoder` or `response_model`, so a
10,000-device list costs one pass. Called by the routers in `routes.py`/`status.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic_core import to_json

from reconciler.model.desired import FirmwareImage
from reconciler.model.observed import DeviceEvent
from reconciler.model.status import Condition
from reconciler.store.views import CollectionStatus, CollectionView, DeviceView

Json = dict[str, Any]


def dumps(value: object) -> bytes:
    return to_json(value)


def _present(**values: object) -> Json:
    return {k: v for k, v in values.items() if v is not None}


def collection(c: CollectionView) -> Json:
    firmware = _present(management=c.management.value, targetFirmwareId=c.target_image_id,
                        currentFirmwareId=c.current_image_id)
    return {"collectionId": c.collection_id, "firmware": firmware, "tags": dict(c.tags)}


def image(i: FirmwareImage) -> Json:
    return {"imageId": i.image_id, "version": i.version, "filename": i.filename,
            "sha256": i.sha256, "length": i.length, "collectionId": i.collection_id,
            "created": i.created, "tags": dict(i.tags)}


def device_firmware(d: DeviceView) -> Json:
    return _present(currentFirmwareId=d.current_image_id, targetFirmwareId=d.target_image_id,
                    firmwareVersion=d.firmware_version, serialNumber=d.serial_number,
                    modelNumber=d.model_number, manufacturer=d.manufacturer, state=d.state,
                    stateMessage=d.state_message)


def device(d: DeviceView) -> Json:
    return {"deviceId": d.device_id, "collectionId": d.collection_id, "tags": dict(d.tags),
            "firmware": device_firmware(d)}


def usage_bytes(image_id: str, targeted_json: str, current_json: str) -> bytes:
    """The usage body around two JSON arrays the store rendered."""
    return b"".join((b'{"firmwareId":', dumps(image_id), b',"targetedDevices":',
                     targeted_json.encode(), b',"currentDevices":', current_json.encode(),
                     b"}"))


def wrap_list(key: str, array_json: str) -> bytes:
    """`{"<key>": <array>}` around a JSON array the store rendered."""
    return b"".join((b'{"', key.encode(), b'":', array_json.encode(), b"}"))


def ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def condition(c: Condition) -> Json:
    return {"type": c.type.value, "status": c.status, "reason": c.reason,
            "message": c.message, "lastTransitionTime": ms(c.last_transition),
            "revision": c.revision}


def event(e: DeviceEvent) -> Json:
    return {"at": ms(e.at), "kind": e.kind, "message": e.message, "revision": e.revision}


def source(status: Mapping[str, object], applied: str | None) -> Json:
    """The source status as the controller stored it (SourceStatus fields, snake_case)."""
    errors = status.get("errors") or []
    last_sync = status.get("last_sync")
    return {**_present(url=_text(status.get("url")), branch=_text(status.get("branch")),
                       appliedRevision=_text(status.get("applied_revision")) or applied,
                       headRevision=_text(status.get("head_revision")),
                       lastSync=ms(last_sync) if isinstance(last_sync, int | float) else None),
            "errors": [str(e) for e in errors] if isinstance(errors, list) else [str(errors)],
            **_present(degraded=degraded(status, applied))}


def degraded(status: Mapping[str, object], applied: str | None) -> str | None:
    """Why the service runs on an older revision than its branch head, if it does:
    "degraded: head abc123 invalid, running def456" (or the source's first error when
    the head itself cannot be read)."""
    errors = status.get("errors")
    running = _text(status.get("applied_revision")) or applied
    if not errors or running is None:
        return None
    head = _text(status.get("head_revision"))
    if head is not None and head != running:
        return f"degraded: head {head[:12]} invalid, running {running[:12]}"
    first = errors[0] if isinstance(errors, list) else errors
    return f"degraded: {first}, running {running[:12]}"


def restart(status: Mapping[str, object]) -> Json | None:
    """The controller's restart record (`started_at`, `registrations`, `offers`)."""
    started = status.get("started_at")
    if not isinstance(started, int | float):
        return None
    return {"startedAt": ms(started),
            "restoredRegistrations": _count(status.get("registrations")),
            "restoredOffers": _count(status.get("offers"))}


def admission(status: Mapping[str, object]) -> Json | None:
    """Undeclared endpoints refused at Register: "12 undeclared endpoints tried to
    register; first: urn:imei:..." (None before any)."""
    count, first = _count(status.get("undeclared")), _text(status.get("first"))
    if not count or first is None:
        return None
    more = "+" if status.get("capped") else ""
    noun = "endpoint" if count == 1 else "endpoints"
    return {"undeclaredEndpoints": count, "firstUndeclared": first,
            "message": f"{count}{more} undeclared {noun} tried to register; first: {first}"}


_DTLS = {"sessions": "sessions", "handshaking": "handshaking", "handshakes": "handshakes",
         "handshake_failures": "handshakeFailures", "handshakes_refused": "handshakesRefused",
         "cookies_sent": "cookiesSent", "replaced": "replacedSessions",
         "evicted": "evictedSessions", "expired": "expiredSessions",
         "revoked": "revokedSessions", "closed": "closedSessions",
         "unknown_identities": "unknownIdentities", "rebindings": "rebindings",
         "refused_identity_mismatch": "refusedIdentityMismatch",
         "refused_plain_coap": "refusedPlainCoap",
         "refused_security_context": "refusedSecurityContext",
         "refused_plain_firmware": "refusedPlainFirmware",
         "awaiting_session": "awaitingSession", "resumed": "resumedSessions"}


def listeners(status: Mapping[str, object]) -> Json | None:
    """Which LwM2M listeners run, HOST:PORT or None (None before the server started)."""
    if not status:
        return None
    return {name: _text(status.get(name)) for name in ("coap", "coaps")}


def dtls(status: Mapping[str, object]) -> Json | None:
    """The CoAPs listener's counters since start (None without a listener)."""
    if not status:
        return None
    return {out: _count(status.get(name)) for name, out in _DTLS.items()}


def credentials(status: Mapping[str, object]) -> Json | None:
    """The credentials file's reloader (None without a file): how many, when loaded and
    why, and the error of a bad file that was not taken (the last good set serves)."""
    path = _text(status.get("path"))
    if path is None:
        return None
    loaded, failed = status.get("loaded_at"), status.get("error_at")
    return {"path": path, "count": _count(status.get("count")),
            "loadedAt": ms(loaded) if isinstance(loaded, int | float) else None,
            "reloads": _count(status.get("reloads")),
            "lastReason": _text(status.get("reason")) or "",
            **({"error": status["error"], "errorAt": ms(failed)}
               if isinstance(status.get("error"), str) and isinstance(failed, int | float)
               else {})}


def notifications(state: Mapping[str, object]) -> Json | None:
    """Each notification provider's counters as the notifier last saved them (None
    without providers): a receiver down for long shows as `dropped` and `failing`."""
    found = state.get("providers")
    if not isinstance(found, dict) or not found:
        return None
    keys = ("sent", "dropped", "retries", "queued", "failing", "lastError", "error")
    return {name: {k: v for k, v in counters.items() if k in keys and v is not None}
            for name, counters in found.items() if isinstance(counters, dict)}


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def collection_status(s: CollectionStatus, conditions: list[Condition]) -> Json:
    halted = bool(s.rollout.get("halted", False))
    # The controller says why under "reason" (its gate's reason, meaningful as a halt
    # reason only while halted); "halt_reason" is accepted too.
    reason = _text(s.rollout.get("halt_reason")) or (
        _text(s.rollout.get("reason")) if halted else None)
    return {**_present(collectionId=s.collection_id, management=s.management.value,
                       targetFirmwareId=s.target_image_id),
            "devices": s.devices, "states": dict(s.counts), "halted": halted or bool(reason),
            **_present(haltReason=reason), "rollout": dict(s.rollout),
            "conditions": [condition(c) for c in conditions]}


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)
