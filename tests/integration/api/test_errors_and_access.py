"""400 / 401 / 404 / 405 paths, all in the `{"status", "message"}` shape."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from reconciler.api import create_app
from reconciler.store import SqliteReader

PATHS = ["/collections", "/collections/{cid}", "/collections/{cid}/firmware",
         "/collections/{cid}/firmware/{fid}", "/collections/{cid}/firmware/{fid}/usage",
         "/collections/{cid}/devices", "/collections/{cid}/devices/{did}", "/status",
         "/status/devices/{did}"]


def fill(path: str, ref: Any, **override: str) -> str:
    ids = {"cid": ref.cid, "fid": ref.new, "did": ref.device, **override}
    return path.format(**ids)


def assert_error(r: httpx.Response, status: int, words: str) -> None:
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"status", "message"} and body["status"] == status
    assert words in body["message"]


@pytest.mark.parametrize("path", PATHS)
async def test_a_request_without_a_token_is_401_and_with_a_wrong_one_too(
        client: httpx.AsyncClient, ref: Any, path: str) -> None:
    url = fill(path, ref)
    assert_error(await client.get(url, headers={"X-API-Token": ""}), 401, "X-API-Token")
    assert_error(await client.get(url, headers={"X-API-Token": "s3cret-tokem"}), 401,
                 "invalid")
    assert (await client.get(url, headers={"X-API-Token": "second-token"})).status_code == 200


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_every_write_method_on_a_known_path_is_405_saying_changes_go_through_git(
        client: httpx.AsyncClient, ref: Any, path: str, method: str) -> None:
    r = await client.request(method, fill(path, ref), content=b"{}")
    assert_error(r, 405, "changes go through git")
    assert r.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(("path", "kind", "bad"), [
    ("/collections/{cid}", "collection", {"cid": "NOT-AN-ID"}),
    ("/collections/{cid}/firmware", "collection", {"cid": "zzzz"}),
    ("/collections/{cid}/firmware/{fid}", "firmware image", {"fid": "17dh0cf43jfgn!"}),
    ("/collections/{cid}/firmware/{fid}/usage", "firmware image", {"fid": "abc"}),
    ("/collections/{cid}/devices", "collection", {"cid": "0123456789abcdefg"}),
    ("/collections/{cid}/devices/{did}", "device", {"did": "DEVICE"}),
    ("/status/devices/{did}", "device", {"did": "x y"}),
])
async def test_a_malformed_id_is_400_naming_what_was_malformed(
        client: httpx.AsyncClient, ref: Any, path: str, kind: str, bad: dict[str, str]) -> None:
    assert_error(await client.get(fill(path, ref, **bad)), 400, f"malformed {kind} id")


@pytest.mark.parametrize(("path", "kind", "unknown"), [
    ("/collections/{cid}", "collection", {"cid": "17dh0cf43jfhii"}),
    ("/collections/{cid}/devices", "collection", {"cid": "aaaa"}),
    ("/collections/{cid}/firmware/{fid}", "firmware image", {"fid": "17dh0cf43jfh09"}),
    ("/collections/{cid}/firmware/{fid}/usage", "firmware image", {"fid": "bbbb"}),
    ("/collections/{cid}/devices/{did}", "device", {"did": "17dh0cf4465ae9"}),
    ("/status/devices/{did}", "device", {"did": "17dh0cf4465ae9"}),
])
async def test_an_unknown_id_is_404(client: httpx.AsyncClient, ref: Any, path: str,
                                    kind: str, unknown: dict[str, str]) -> None:
    assert_error(await client.get(fill(path, ref, **unknown)), 404, f"unknown {kind}")


async def test_a_device_or_image_of_another_collection_is_404_there(
        client: httpx.AsyncClient, ref: Any) -> None:
    r = await client.get(f"/collections/{ref.other_cid}/devices/{ref.device}")
    assert_error(r, 404, "unknown device")
    r = await client.get(f"/collections/{ref.other_cid}/firmware/{ref.new}/usage")
    assert_error(r, 404, "unknown firmware image")


async def test_other_methods_are_405_without_talking_about_git(
        client: httpx.AsyncClient, ref: Any) -> None:
    for method in ("OPTIONS", "TRACE"):
        r = await client.request(method, f"/collections/{ref.cid}")
        assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
        assert r.json() == {"status": 405, "message": f"{method} is not supported here; "
                                                      "this API answers GET and HEAD"}


async def test_an_unknown_path_is_a_json_404(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/devices"), 404, "no such resource")
    assert_error(await client.post("/nowhere"), 404, "no such resource")


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_an_id_with_an_encoded_slash_is_an_unknown_path_answered_with_a_json_404(
        client: httpx.AsyncClient, ref: Any, method: str) -> None:
    # %2F is decoded before routing: /collections/%2F is /collections//, no route of ours.
    assert_error(await client.request(method, "/collections/%2F"), 404, "no such resource")
    r = await client.request(method, f"/collections/{ref.cid}/devices/a%2Fb")
    assert_error(r, 404, "no such resource")


@pytest.mark.parametrize("path", [*PATHS, "/healthz", "/readyz", "/openapi.json", "/docs"])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_trailing_slash_is_an_unknown_path_answered_with_a_json_404_not_a_redirect(
        client: httpx.AsyncClient, ref: Any, path: str, method: str) -> None:
    r = await client.request(method, fill(path, ref) + "/")
    assert_error(r, 404, "no such resource")
    assert "location" not in r.headers


async def test_without_configured_tokens_the_api_is_open(reader: SqliteReader,
                                                         ref: Any) -> None:
    transport = httpx.ASGITransport(app=create_app(reader))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        assert (await http.get(f"/collections/{ref.cid}")).status_code == 200


async def test_probes_and_docs_need_no_token(client: httpx.AsyncClient) -> None:
    bare = {"X-API-Token": ""}
    assert (await client.get("/healthz", headers=bare)).json() == {"status": "ok"}
    assert (await client.get("/readyz", headers=bare)).json() == {
        "status": "ready", "appliedRevision": "4f1c2e9"}
    assert (await client.get("/docs", headers=bare)).status_code == 200
