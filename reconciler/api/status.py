"""Status routes beyond the reference: `/status`, `/status/devices/{deviceId}`, and the
orchestrator probes `/healthz` (process up) and `/readyz` (store readable and a desired
state applied). Built by `status_router` and `health_router`; called by `app.create_app`.
Times here are milliseconds since the epoch, like the reference's `created`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from reconciler.api import render, schemas
from reconciler.api.cache import BodyCache
from reconciler.api.errors import check_id, error_response, not_found
from reconciler.api.openapi import errors
from reconciler.api.routes import ID_ERRORS, JsonBytes, documented, refuse_writes
from reconciler.store import StoreReader

EVENT_LIMIT = 50


def status_router(reader: StoreReader, cache: BodyCache) -> APIRouter:
    router = APIRouter(tags=["status"])

    def build_status() -> bytes:
        # The per-collection counts come from the store's tallies (a few rows whatever
        # the fleet's size); the body is still rendered once per store change.
        applied = reader.applied_revision()
        collections = [render.collection_status(s, reader.conditions(s.collection_id))
                       for s in reader.collection_statuses()]
        restart = render.restart(reader.restart_status())
        admission = render.admission(reader.admission_status())
        credentials = render.credentials(reader.credentials_status())
        notifications = render.notifications(reader.notify_state())
        dtls = render.dtls(reader.dtls_status())
        listeners = render.listeners(reader.listeners())
        return render.dumps({**({"appliedRevision": applied} if applied else {}),
                             "source": render.source(reader.source_status(), applied),
                             **({"restart": restart} if restart else {}),
                             **({"admission": admission} if admission else {}),
                             **({"listeners": listeners} if listeners else {}),
                             **({"dtls": dtls} if dtls else {}),
                             **({"credentials": credentials} if credentials else {}),
                             **({"notifications": notifications} if notifications else {}),
                             "collections": collections})

    @router.get("/status", summary="Source, revision and per-collection rollout status",
                **documented(schemas.Status, 401))
    async def get_status() -> Response:
        return JsonBytes(cache.get(("status",), build_status))

    @router.get("/status/devices/{deviceId}",
                summary="A device's firmware view, conditions and recent events",
                **documented(schemas.DeviceStatus, *ID_ERRORS))
    async def get_device_status(deviceId: str) -> Response:
        cid = reader.device_collection(check_id("device", deviceId))
        view = reader.device(cid, deviceId) if cid else None
        if view is None:
            raise not_found("device", deviceId)
        body = {"deviceId": view.device_id, "collectionId": view.collection_id,
                "firmware": render.device_firmware(view),
                "conditions": [render.condition(c) for c in reader.conditions(deviceId)],
                "events": [render.event(e) for e in reader.events(deviceId, EVENT_LIMIT)]}
        return JsonBytes(render.dumps(body))

    for route in list(router.routes):
        refuse_writes(router, getattr(route, "path", ""))
    return router


def health_router(reader: StoreReader,
                  not_acting: Callable[[], str | None] = lambda: None) -> APIRouter:
    router = APIRouter(tags=["health"])
    probe: dict[str, Any] = {"response_class": JsonBytes, "response_model": None}

    @router.get("/healthz", summary="The process is up",
                responses={200: {"model": schemas.Health}, **errors()}, **probe)
    async def healthz() -> Response:
        return JsonBytes(render.dumps({"status": "ok"}))

    @router.get("/readyz", summary="The store is readable and a desired state is applied",
                responses={200: {"model": schemas.Health}, **errors(503)}, **probe)
    async def readyz() -> Response:
        if (why_not := not_acting()) is not None:  # a node cut off from a shared store
            return error_response(503, why_not)
        try:
            revision = reader.applied_revision() if reader.ping() else None
        except Exception as exc:  # a locked or vanished file: not ready, say why
            return error_response(503, f"store not readable: {exc}")
        if revision is None:
            return error_response(503, "no desired state applied yet")
        why = render.degraded(reader.source_status(), revision)
        return JsonBytes(render.dumps({"status": "degraded" if why else "ready",
                                       "appliedRevision": revision,
                                       **({"degraded": why} if why else {})}))

    for route in list(router.routes):
        refuse_writes(router, getattr(route, "path", ""), guarded=False)
    return router
