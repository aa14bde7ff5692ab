"""Device and rollout events -> what each provider is sent: pure functions, no I/O.

`NotifyEvent` is one row of the store's event history with its sequence number (the
dedupe key receivers see) and collection; `severity_of` grades it, `routed` says which
alerts want it, and `webhook_request` / `slack_request` build the HTTP requests (the
webhook's body signed with HMAC-SHA256). Called by `reconciler.notify.notifier`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from reconciler.model.notify import Alert, Notifications, Provider, Severity
from reconciler.model.observed import DeviceEvent
from reconciler.model.status import UpdateState

SIGNATURE_HEADER = "X-Fota-Signature"  # "sha256=<hex HMAC-SHA256 of the body>"
EVENT_ID_HEADER = "X-Fota-Event-Id"  # the event's sequence number: receivers dedupe on it
CLOUDEVENTS_SOURCE = "urn:fota-gitops"
_BAD = {UpdateState.UPDATE_FAILED.value, UpdateState.REVERTED.value}


@dataclass(frozen=True, slots=True)
class NotifyEvent:
    seq: int  # the store's event number: unique and increasing in one state file
    collection_id: str | None
    event: DeviceEvent

    @property
    def severity(self) -> Severity:
        return severity_of(self.event.kind, self.event.message)


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP POST, ready to send (retries resend the same bytes)."""

    url: str
    body: bytes
    headers: tuple[tuple[str, str], ...]


def severity_of(kind: str, message: str) -> Severity:
    """`error` for an action's error, a move into UpdateFailed or Reverted and a rollout
    that halted, `warning` for TimedOut (it is retried), `info` for the rest. State
    events read `Old -> New: message` (`engine.decision.move`)."""
    if kind == "error" or (kind == "rollout" and message.startswith("rollout halted")):
        return Severity.ERROR
    if kind == "state":
        moved_to = message.split(" -> ", 1)[1].split(":", 1)[0] if " -> " in message else ""
        if moved_to in _BAD:
            return Severity.ERROR
        if moved_to == UpdateState.TIMED_OUT.value:
            return Severity.WARNING
    return Severity.INFO


def matches(alert: Alert, event: NotifyEvent) -> bool:
    if event.collection_id is None or not alert.selects_collection(event.collection_id):
        return False
    if alert.kinds and event.event.kind not in alert.kinds:
        return False
    return event.severity >= alert.severity


def routed(notifications: Notifications, event: NotifyEvent) -> list[str]:
    """The names of the event providers (not the commit-status ones) that get `event`:
    each at most once, whatever number of its alerts match."""
    kinds = {p.name: p.kind for p in notifications.providers}
    names = {a.provider for a in notifications.alerts
             if not kinds[a.provider].commit_status and matches(a, event)}
    return sorted(names)


def event_data(event: NotifyEvent) -> dict[str, object]:
    e = event.event
    return {"id": str(event.seq), "collectionId": event.collection_id,
            "deviceId": e.device_id, "kind": e.kind, "severity": event.severity.label,
            "message": e.message, "revision": e.revision, "time": _iso(e.at)}


def webhook_request(provider: Provider, url: str, key: bytes | None,
                    event: NotifyEvent) -> Request:
    """The JSON body (a CloudEvent in structured mode when the provider asks), signed
    with the HMAC key when there is one."""
    data = event_data(event)
    if provider.cloudevents:
        payload: dict[str, object] = {
            "specversion": "1.0", "id": str(event.seq), "source": CLOUDEVENTS_SOURCE,
            "type": f"io.fota-gitops.{_about(event)}.{event.event.kind}",
            "subject": event.event.device_id or event.collection_id, "time": data["time"],
            "datacontenttype": "application/json", "data": data}
        content_type = "application/cloudevents+json"
    else:
        payload, content_type = data, "application/json"
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = [("Content-Type", content_type), (EVENT_ID_HEADER, str(event.seq))]
    if key is not None:
        headers.append((SIGNATURE_HEADER, signature(key, body)))
    return Request(url, body, tuple(headers))


def signature(key: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def slack_request(url: str, event: NotifyEvent, collection_name: str) -> Request:
    """An incoming-webhook message: `{"text": ...}` is all Slack (and Mattermost,
    Rocket.Chat, Discord's /slack endpoint) need."""
    e = event.event
    where = collection_name or event.collection_id or "?"
    device = f"device {e.device_id}: " if e.device_id else ""
    text = (f"fota {event.severity.label}: {where}: {device}{e.message} "
            f"(revision {e.revision[:12]})")
    body = json.dumps({"text": text}, separators=(",", ":")).encode()
    return Request(url, body, (("Content-Type", "application/json"),
                               (EVENT_ID_HEADER, str(event.seq))))


def _about(event: NotifyEvent) -> str:
    """A device's event, or a collection's (a rollout's halt or resume: no device)."""
    return "device" if event.event.device_id else "collection"


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
