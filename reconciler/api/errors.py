"""Every error as the reference's `{"status": <code>, "message": "..."}` JSON.

`ApiError` is what routes raise; the handlers installed by `install_handlers` also turn
FastAPI's validation errors (-> 400), Starlette's unknown paths and methods (404/405) and
any unexpected exception (-> 500, logged) into that shape. Called by `app.create_app`.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from reconciler.api.render import dumps
from reconciler.model.ids import is_valid_id

log = logging.getLogger(__name__)

READ_ONLY = ("this API is read-only: changes go through git "
             "(edit manifests/ in the repository and commit)")


WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
ALLOW = {"Allow": "GET, HEAD"}  # every path of this API answers exactly these


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_response(status: int, message: str,
                   headers: dict[str, str] | None = None) -> Response:
    return Response(dumps({"status": status, "message": message}), status_code=status,
                    media_type="application/json", headers=headers)


def check_id(kind: str, value: str) -> str:
    """400 for a malformed id, so a typo is told apart from an unknown id (404)."""
    if not is_valid_id(value):
        raise ApiError(400, f"malformed {kind} id {value[:40]!r}: expected 4-16 characters "
                            "of 0-9 and a-n")
    return value


def not_found(kind: str, value: str) -> ApiError:
    return ApiError(404, f"unknown {kind} {value}")


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        message = (READ_ONLY if request.method in WRITE_METHODS
                   else f"{request.method} is not supported here; this API answers GET "
                        "and HEAD")
        return error_response(405, message, {**dict(exc.headers or {}), **ALLOW})
    message = exc.detail if isinstance(exc.detail, str) else "error"
    if exc.status_code == 404 and message == "Not Found":
        message = "no such resource"
    return error_response(exc.status_code, message, dict(exc.headers or {}))


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
             for e in exc.errors()]
    return error_response(400, "bad request: " + "; ".join(parts))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal error")


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
