"""What `/openapi.json` says the server answers, and nothing it never sends.

`errors(...)` documents error responses with the `{"status", "message"}` schema, route by
route (routes.py, status.py). `install_openapi` then trims FastAPI's generated document:
the 422 `HTTPValidationError` it adds to every route with parameters (our path parameters
are plain strings and any validation error is answered 400 by `errors.py`), and, when no
token is configured, the 401 answers and the X-API-Token security scheme. Called by
`app.create_app`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from reconciler.api import schemas

ERROR_TEXT = {
    400: "A malformed id: expected 4-16 characters of 0-9 and a-n",
    401: "Missing or wrong X-API-Token header",
    404: "An unknown collection, firmware image or device",
    405: "Read-only API: changes go through git",
    500: "Unexpected server error",
    503: "Not ready: the store is unreadable or no desired state is applied yet",
}
_ALLOW_HEADER = {"Allow": {"description": "The methods this path answers: GET, HEAD",
                           "schema": {"type": "string"}}}
_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Route `responses` for these error codes (500 always: any route may fail)."""
    documented: dict[int | str, dict[str, Any]] = {}
    for code in sorted({*codes, 500}):
        documented[code] = {"model": schemas.Error, "description": ERROR_TEXT[code]}
        if code == 405:
            documented[code]["headers"] = _ALLOW_HEADER
    return documented


def install_openapi(app: FastAPI, *, guarded: bool) -> None:
    """Trim `app`'s generated document once, when first asked for."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = trimmed(generate(), guarded=guarded)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented hook


def trimmed(doc: dict[str, Any], *, guarded: bool) -> dict[str, Any]:
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
            if not guarded:
                operation.get("responses", {}).pop("401", None)
                operation.pop("security", None)
    components = doc.get("components", {})
    for name in _VALIDATION_SCHEMAS:
        components.get("schemas", {}).pop(name, None)
    if not guarded:
        components.pop("securitySchemes", None)
    return doc
