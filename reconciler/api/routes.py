"""GET routes of the reference resources: collections, firmware images, usage, devices.

Built by `collections_router(reader, cache)` (no import-time globals). Each handler checks
the ids (400 malformed, 404 unknown), then returns a cached body rendered by `render.py`.
Write methods on these paths answer 405: changes go through git.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from reconciler.api import render, schemas
from reconciler.api.cache import BodyCache
from reconciler.api.device_lists import DeviceLists
from reconciler.api.errors import ALLOW, READ_ONLY, WRITE_METHODS, ApiError, check_id, not_found
from reconciler.api.openapi import errors
from reconciler.model.desired import FirmwareImage
from reconciler.store import CollectionView, StoreReader

ID_ERRORS = (400, 401, 404)  # routes with ids: malformed, no token, unknown


class JsonBytes(JSONResponse):
    """A JSON response whose body we rendered already (bytes pass through untouched);
    a JSONResponse subclass so /docs shows the declared schema as application/json."""

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else super().render(content)


def documented(model: type[schemas.Schema], *codes: int) -> dict[str, Any]:
    """Route kwargs: the schema shows in /docs but the body is our pre-rendered bytes;
    `codes` are the error statuses the route answers."""
    return {"response_class": JsonBytes, "response_model": None,
            "responses": {200: {"model": model}, **errors(*codes)}}


def refuse_writes(router: APIRouter, path: str, *, guarded: bool = True) -> None:
    """405 for every write method on `path`, documented so clients see the refusal
    (and the 401 that comes first when the router checks the token)."""
    async def read_only() -> Response:
        raise ApiError(405, READ_ONLY, ALLOW)

    for method in WRITE_METHODS:  # one route each: one operation (and operationId) each
        router.add_api_route(path, read_only, methods=[method],
                             summary=f"{method}: refused, changes go through git",
                             status_code=405, response_class=JsonBytes, response_model=None,
                             response_description=READ_ONLY,
                             responses=errors(405, *((401,) if guarded else ())),
                             openapi_extra={"parameters": path_parameters(path)})
        # Only this tag, not the router's: /docs groups the refusals apart from the GETs.
        added = router.routes[-1]
        assert isinstance(added, APIRoute)
        added.tags = ["writes (refused)"]


def path_parameters(path: str) -> list[dict[str, Any]]:
    """OpenAPI wants every `{name}` of a path declared, even where the handler ignores it."""
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"\{(\w+)\}", path)]


def collections_router(reader: StoreReader, cache: BodyCache) -> APIRouter:
    router = APIRouter(tags=["firmware"])
    lists = DeviceLists(reader)

    def body(key: tuple[str, ...], render_body: Callable[[], bytes]) -> JsonBytes:
        return JsonBytes(cache.get(key, render_body))

    async def big_body(key: tuple[str, ...], render_body: Callable[[], bytes],
                       collection_id: str) -> JsonBytes:
        """A list over the collection's devices: valid until they change or a snapshot
        is applied."""
        return JsonBytes(await cache.get_offloaded(
            key, render_body, stamp=lambda: lists.stamp(collection_id)))

    def known_collection(cid: str) -> CollectionView:
        found = reader.collection(check_id("collection", cid))
        if found is None:
            raise not_found("collection", cid)
        return found

    def known_image(cid: str, fid: str) -> FirmwareImage:
        known_collection(cid)
        found = reader.image(cid, check_id("firmware image", fid))
        if found is None:
            raise not_found("firmware image", fid)
        return found

    @router.get("/collections", summary="List collections",
                **documented(schemas.CollectionList, 401))
    async def list_collections() -> Response:
        return body(("collections",), lambda: render.dumps(
            {"collections": [render.collection(c) for c in reader.collections()]}))

    @router.get("/collections/{collectionId}", summary="Get a collection",
                **documented(schemas.Collection, *ID_ERRORS))
    async def get_collection(collectionId: str) -> Response:
        return body(("collection", collectionId),
                    lambda: render.dumps(render.collection(known_collection(collectionId))))

    @router.get("/collections/{collectionId}/firmware", summary="List firmware images",
                **documented(schemas.ImageList, *ID_ERRORS))
    async def list_images(collectionId: str) -> Response:
        def build() -> bytes:
            known_collection(collectionId)
            images = reader.images(collectionId)
            return render.dumps({"images": [render.image(i) for i in images]})
        return body(("images", collectionId), build)

    @router.get("/collections/{collectionId}/firmware/{imageId}", summary="Get a firmware image",
                **documented(schemas.Image, *ID_ERRORS))
    async def get_image(collectionId: str, imageId: str) -> Response:
        return body(("image", collectionId, imageId),
                    lambda: render.dumps(render.image(known_image(collectionId, imageId))))

    @router.get("/collections/{collectionId}/firmware/{imageId}/usage",
                summary="Devices targeting or running a firmware image",
                **documented(schemas.Usage, *ID_ERRORS))
    async def get_usage(collectionId: str, imageId: str) -> Response:
        def build() -> bytes:
            known_image(collectionId, imageId)
            targeted, current = reader.usage_json(imageId)
            return render.usage_bytes(imageId, targeted, current)
        return await big_body(("usage", collectionId, imageId), build, collectionId)

    @router.get("/collections/{collectionId}/devices", summary="List the devices of a collection",
                **documented(schemas.DeviceList, *ID_ERRORS))
    async def list_devices(collectionId: str) -> Response:
        def build() -> bytes:
            known_collection(collectionId)
            return lists.render(collectionId)
        return await big_body(("devices", collectionId), build, collectionId)

    @router.get("/collections/{collectionId}/devices/{deviceId}", summary="Get a device",
                **documented(schemas.Device, *ID_ERRORS))
    async def get_device(collectionId: str, deviceId: str) -> Response:
        def build() -> bytes:
            known_collection(collectionId)
            found = reader.device(collectionId, check_id("device", deviceId))
            if found is None:
                raise not_found("device", deviceId)
            return render.dumps(render.device(found))
        return body(("device", collectionId, deviceId), build)

    for route in list(router.routes):
        refuse_writes(router, getattr(route, "path", ""))
    return router
