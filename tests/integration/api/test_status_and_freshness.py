"""/status, per-device status, /readyz, the OpenAPI document, and answers that follow the
store as the controller writes to it (the body cache never serves stale data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from reconciler.api import create_app, schemas
from reconciler.model.desired import Management
from reconciler.model.observed import DeviceEvent, DeviceProgress, DeviceReport
from reconciler.model.status import Condition, ConditionType, UpdateState
from reconciler.store import SqliteStore, open_reader, open_store


async def test_status_shows_source_revision_errors_counts_and_halt_reason(
        client: httpx.AsyncClient, store: SqliteStore, ref: Any) -> None:
    store.set_source_status({
        "url": "/srv/fleet.git", "branch": "main", "applied_revision": "4f1c2e9",
        "head_revision": "9aa0b1c", "last_sync": 1700000000.25,
        "errors": ("manifests/fleet.yaml:12: devices[3].target: no such image",)})
    store.put_collection_status(ref.cid, {"halted": True, "in_flight": 0, "failed": 3,
                                          "halt_reason": "3 of 5 started updates failed"})
    stalled = Condition(ConditionType.STALLED, True, "FailureThreshold", "halted", 12.5, "4f1")
    store.put_conditions(ref.cid, [stalled])
    body = (await client.get("/status")).json()
    schemas.Status.model_validate(body)
    assert body["appliedRevision"] == "4f1c2e9"
    assert body["source"] == {
        "url": "/srv/fleet.git", "branch": "main", "appliedRevision": "4f1c2e9",
        "headRevision": "9aa0b1c", "lastSync": 1700000000250,
        "errors": ["manifests/fleet.yaml:12: devices[3].target: no such image"],
        "degraded": "degraded: head 9aa0b1c invalid, running 4f1c2e9"}
    fleet = next(c for c in body["collections"] if c["collectionId"] == ref.cid)
    assert fleet["states"] == {"Downloading": 1, "Pending": 1} and fleet["devices"] == 2
    assert fleet["halted"] is True
    assert fleet["haltReason"] == "3 of 5 started updates failed"
    assert fleet["conditions"] == [{"type": "Stalled", "status": True,
                                    "reason": "FailureThreshold", "message": "halted",
                                    "lastTransitionTime": 12500, "revision": "4f1"}]


async def test_a_halt_shows_the_controllers_reason_only_while_halted(
        client: httpx.AsyncClient, store: SqliteStore, ref: Any) -> None:
    async def fleet() -> dict[str, Any]:
        body = (await client.get("/status")).json()
        return next(c for c in body["collections"] if c["collectionId"] == ref.cid)

    store.put_collection_status(ref.cid, {"inFlight": 2, "halted": False,
                                          "reason": "2 of 2 slots in use"})
    shown = await fleet()
    assert shown["halted"] is False and "haltReason" not in shown
    # The figures are the live ones behind "states" (one Downloading), not the snapshot's,
    # and its gate reason is gone: a slot is free by those figures.
    assert shown["states"] == {"Downloading": 1, "Pending": 1}
    assert shown["rollout"]["inFlight"] == 1 and "reason" not in shown["rollout"]
    store.put_collection_status(ref.cid, {"halted": True, "reason": "rollout halted: 3 of 4"})
    shown = await fleet()
    assert shown["halted"] is True and shown["haltReason"] == "rollout halted: 3 of 4"


async def test_status_says_what_the_running_server_restored_once_it_started(
        client: httpx.AsyncClient, store: SqliteStore) -> None:
    assert "restart" not in (await client.get("/status")).json()
    store.set_restart_status({"started_at": 1700000000.5, "registrations": 7, "offers": 2})
    body = (await client.get("/status")).json()
    schemas.Status.model_validate(body)
    assert body["restart"] == {"startedAt": 1700000000500, "restoredRegistrations": 7,
                               "restoredOffers": 2}


async def test_device_status_has_conditions_and_recent_events_oldest_first(
        client: httpx.AsyncClient, store: SqliteStore, ref: Any) -> None:
    events = [DeviceEvent(ref.device, 100.0 + n, "state", f"event {n}", "4f1c2e9")
              for n in range(60)]
    store.put_progress(DeviceProgress(ref.device, ref.new, UpdateState.DOWNLOADED), events)
    ready = Condition(ConditionType.READY, False, "Updating", "downloaded", 3.0, "4f1c2e9")
    store.put_conditions(ref.device, [ready])
    body = (await client.get(f"/status/devices/{ref.device}")).json()
    schemas.DeviceStatus.model_validate(body)
    assert body["firmware"]["state"] == "Downloaded"
    assert [c["reason"] for c in body["conditions"]] == ["Updating"]
    assert len(body["events"]) == 50
    assert body["events"][-1] == {"at": 159000, "kind": "state", "message": "event 59",
                                  "revision": "4f1c2e9"}


async def test_answers_follow_every_commit_of_the_writer(
        client: httpx.AsyncClient, store: SqliteStore, ref: Any) -> None:
    url = f"/collections/{ref.cid}/firmware/{ref.new}/usage"
    assert (await client.get(url)).json()["currentDevices"] == []
    store.put_report(ref.device2, DeviceReport("urn:imei:2", firmware_version="2.0"))
    assert (await client.get(url)).json()["currentDevices"] == [ref.device2]
    devices = (await client.get(f"/collections/{ref.cid}/devices")).json()["devices"]
    assert devices[1]["firmware"]["state"] == "Current"
    store.apply_desired(ref.desired(Management.DEVICE))
    device = (await client.get(f"/collections/{ref.cid}/devices/{ref.device}")).json()
    assert device["firmware"]["targetFirmwareId"] == ref.old  # its own target now
    assert (await client.get(url)).json()["targetedDevices"] == []


async def test_readyz_is_503_until_a_desired_state_is_applied(tmp_path: Path) -> None:
    writer = open_store(tmp_path / "empty.db")
    reader = open_reader(tmp_path / "empty.db")
    transport = httpx.ASGITransport(app=create_app(reader))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        r = await http.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == 503
        assert (await http.get("/status")).json() == {"source": {"errors": []},
                                                      "collections": []}
    reader.close()
    writer.close()


async def test_the_openapi_document_describes_exactly_our_get_endpoints(
        client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert set(doc["paths"]) == {
        "/collections", "/collections/{collectionId}", "/collections/{collectionId}/firmware",
        "/collections/{collectionId}/firmware/{imageId}",
        "/collections/{collectionId}/firmware/{imageId}/usage",
        "/collections/{collectionId}/devices", "/collections/{collectionId}/devices/{deviceId}",
        "/status", "/status/devices/{deviceId}", "/healthz", "/readyz",
        "/events", "/status/events", "/metrics"}
    # GET, and the write methods documented as refused (405)
    assert all(set(ops) == {"get", "post", "put", "patch", "delete"}
               for ops in doc["paths"].values())
    device = doc["components"]["schemas"]["DeviceFirmware"]["properties"]
    assert device["currentFirmwareId"] == {"type": "string", "title": "Currentfirmwareid"}
    usage = doc["paths"]["/collections/{collectionId}/firmware/{imageId}/usage"]["get"]
    assert usage["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Usage"}


async def test_the_device_list_renders_every_device_exactly_as_its_own_get(
        client: httpx.AsyncClient, store: SqliteStore, ref: Any) -> None:
    for management in (Management.COLLECTION, Management.DEVICE, Management.DISABLED):
        store.apply_desired(ref.desired(management))
        store.put_progress(DeviceProgress(ref.device2, None, UpdateState.CURRENT, ""))
        for cid in (ref.cid, ref.other_cid):
            listed = (await client.get(f"/collections/{cid}/devices")).json()["devices"]
            assert listed
            for item in listed:
                url = f"/collections/{cid}/devices/{item['deviceId']}"
                assert item == (await client.get(url)).json()
