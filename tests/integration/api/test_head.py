"""HEAD is answered like GET without a body, on every GET route (RFC 9110 section 9.3.2)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

PATHS = ["/collections", "/collections/{cid}", "/collections/{cid}/firmware",
         "/collections/{cid}/firmware/{fid}", "/collections/{cid}/firmware/{fid}/usage",
         "/collections/{cid}/devices", "/collections/{cid}/devices/{did}", "/status",
         "/status/devices/{did}", "/healthz", "/readyz", "/openapi.json", "/docs"]


def fill(path: str, ref: Any, **override: str) -> str:
    return path.format(**{"cid": ref.cid, "fid": ref.new, "did": ref.device, **override})


async def assert_head_like_get(client: httpx.AsyncClient, url: str,
                               headers: dict[str, str] | None = None) -> httpx.Response:
    got = await client.get(url, headers=headers)
    head = await client.head(url, headers=headers)
    assert head.status_code == got.status_code
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert int(head.headers["content-length"]) == len(got.content) > 0
    return head


@pytest.mark.parametrize("path", PATHS)
async def test_head_on_a_get_route_has_the_get_status_and_headers_and_no_body(
        client: httpx.AsyncClient, ref: Any, path: str) -> None:
    head = await assert_head_like_get(client, fill(path, ref))
    assert head.status_code == 200


@pytest.mark.parametrize(("url", "headers", "status"), [
    ("/collections/NOT-AN-ID", None, 400),
    ("/collections", {"X-API-Token": "wrong"}, 401),
    ("/collections/17dh0cf43jfaaa", None, 404),
    ("/nowhere", None, 404),
])
async def test_head_of_an_error_answer_has_the_error_status_without_the_body(
        client: httpx.AsyncClient, url: str, headers: dict[str, str] | None,
        status: int) -> None:
    head = await assert_head_like_get(client, url, headers)
    assert head.status_code == status
