"""GET routes of the reference resources: collections, firmware images, usage, devices.

Built by `collections_router(reader, cache)` (no import-time globals). Each handler checks
the ids (400 malformed, 404 unknown), then returns a cached body rendered by `render.py`.
Write methods on these paths answer 405: changes go through git.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from reconciler.api import render, schemas
from reconciler.api.cache import BodyCache
from reconciler.api.errors import ALLOW, READ_ONLY, WRITE_METHODS, ApiError, check_id, not_found
from reconciler.store import CollectionView, StoreReader

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.Error, "description": text}
    for code, text in ((400, "Malformed id"), (401, "Missing or wrong X-API-Token"),
                       (404, "Unknown id"))
}


class JsonBytes(JSONResponse):
    """A JSON response whose body we rendered already (bytes pass through untouched);
    a JSONResponse subclass so /docs shows the declared schema as application/json."""

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else super().render(content)


def documented(model: type[schemas.Schema]) -> dict[str, Any]:
    """Route kwargs: the schema shows in /docs but the body is our pre-rendered bytes."""
    return {"response_class": JsonBytes, "response_model": None,
            "responses": {200: {"model": model}, **ERRORS}}


def refuse_writes(router: APIRouter, path: str) -> None:
    async def read_only() -> Response:
        raise ApiError(405, READ_ONLY, ALLOW)

    router.add_api_route(path, read_only, methods=list(WRITE_METHODS), include_in_schema=False)


def collections_router(reader: StoreReader, cache: BodyCache) -> APIRouter:
    router = APIRouter(tags=["firmware"])

    def body(key: tuple[str, ...], render_body: Callable[[], bytes]) -> JsonBytes:
        return JsonBytes(cache.get(key, render_body))

    async def big_body(key: tuple[str, ...], render_body: Callable[[], bytes]) -> JsonBytes:
        return JsonBytes(await cache.get_offloaded(key, render_body))

    def known_collection(cid: str) -> CollectionView:
        found = reader.collection(check_id("collection", cid))
        if found is None:
            raise not_found("collection", cid)
        return found

    def known_image(cid: str, fid: str) -> None:
        known_collection(cid)
        if reader.image(cid, check_id("firmware image", fid)) is None:
            raise not_found("firmware image", fid)

    @router.get("/collections", summary="List collections", **documented(schemas.CollectionList))
    async def list_collections() -> Response:
        return body(("collections",), lambda: render.dumps(
            {"collections": [render.collection(c) for c in reader.collections()]}))

    @router.get("/collections/{collectionId}", summary="Get a collection",
                **documented(schemas.Collection))
    async def get_collection(collectionId: str) -> Response:
        return body(("collection", collectionId),
                    lambda: render.dumps(render.collection(known_collection(collectionId))))

    @router.get("/collections/{collectionId}/firmware", summary="List firmware images",
                **documented(schemas.ImageList))
    async def list_images(collectionId: str) -> Response:
        def build() -> bytes:
            known_collection(collectionId)
            images = reader.images(collectionId)
            return render.dumps({"images": [render.image(i) for i in images]})
        return body(("images", collectionId), build)

    @router.get("/collections/{collectionId}/firmware/{imageId}", summary="Get a firmware image",
                **documented(schemas.Image))
    async def get_image(collectionId: str, imageId: str) -> Response:
        def build() -> bytes:
            known_image(collectionId, imageId)
            found = reader.image(collectionId, imageId)
            assert found is not None
            return render.dumps(render.image(found))
        return body(("image", collectionId, imageId), build)

    @router.get("/collections/{collectionId}/firmware/{imageId}/usage",
                summary="Devices targeting or running a firmware image",
                **documented(schemas.Usage))
    async def get_usage(collectionId: str, imageId: str) -> Response:
        def build() -> bytes:
            known_image(collectionId, imageId)
            targeted, current = reader.usage_json(imageId)
            return render.usage_bytes(imageId, targeted, current)
        return await big_body(("usage", collectionId, imageId), build)

    @router.get("/collections/{collectionId}/devices", summary="List the devices of a collection",
                **documented(schemas.DeviceList))
    async def list_devices(collectionId: str) -> Response:
        def build() -> bytes:
            known_collection(collectionId)
            return render.wrap_list("devices", reader.devices_json(collectionId))
        return await big_body(("devices", collectionId), build)

    @router.get("/collections/{collectionId}/devices/{deviceId}", summary="Get a device",
                **documented(schemas.Device))
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
