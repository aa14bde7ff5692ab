"""/openapi.json documents exactly the answers the server gives: no 422 it never sends, and
every error status it does send, with the `{"status", "message"}` schema."""

from __future__ import annotations

import re
from typing import Any

import httpx

from reconciler.api import create_app
from reconciler.store import SqliteReader

ERROR_REF = {"$ref": "#/components/schemas/Error"}
WITH_IDS = {"200", "400", "401", "404", "500"}
WRITE = {"401", "405", "500"}
EXPECTED = {
    "/collections": {"get": {"200", "401", "500"}},
    "/status": {"get": {"200", "401", "500"}},
    "/metrics": {"get": {"200", "401", "500"}},
    "/healthz": {"get": {"200", "500"}},
    "/readyz": {"get": {"200", "503", "500"}},
    "/events": {"get": WITH_IDS | {"503"}},  # 503: too many streams open
}
UNGUARDED = ("/healthz", "/readyz")  # the probes answer without a token


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in doc["paths"].items()
            for method, op in ops.items()]


async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


async def test_no_operation_advertises_the_422_validation_error_the_server_never_sends(
        client: httpx.AsyncClient) -> None:
    doc = await document(client)
    assert all("422" not in op["responses"] for _, _, op in operations(doc))
    assert not {"HTTPValidationError", "ValidationError"} & set(doc["components"]["schemas"])


async def test_every_route_documents_exactly_its_error_statuses_with_the_error_schema(
        client: httpx.AsyncClient) -> None:
    doc = await document(client)
    for path, method, op in operations(doc):
        if method != "get":
            expected = WRITE - {"401"} if path in UNGUARDED else WRITE
        else:
            expected = EXPECTED.get(path, {}).get(method, WITH_IDS)
        assert set(op["responses"]) == expected, (method, path)
        for code, response in op["responses"].items():
            if code != "200":
                assert response["content"]["application/json"]["schema"] == ERROR_REF
        if method != "get":
            assert op["responses"]["405"]["headers"]["Allow"]["schema"] == {"type": "string"}


async def test_every_write_method_is_documented_as_refused_with_its_path_parameters(
        client: httpx.AsyncClient) -> None:
    doc = await document(client)
    for path, ops in doc["paths"].items():
        assert set(ops) == {"get", "post", "put", "patch", "delete"}, path
        for op in ops.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"\{(\w+)\}", path)), path


async def test_an_api_without_tokens_documents_no_401_and_no_token_scheme(
        reader: SqliteReader) -> None:
    transport = httpx.ASGITransport(app=create_app(reader))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        doc = await document(http)
        assert (await http.get("/collections", headers={"X-API-Token": "x"})).status_code == 200
    assert "securitySchemes" not in doc["components"]
    for _, _, op in operations(doc):
        assert "401" not in op["responses"] and "security" not in op
