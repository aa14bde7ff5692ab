"""/docs loads Swagger UI from this server, never from a CDN, so it works offline."""

from __future__ import annotations

import re

import httpx


async def test_the_docs_page_references_only_local_assets_and_each_is_served(
        client: httpx.AsyncClient) -> None:
    page = await client.get("/docs", headers={"X-API-Token": ""})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert re.search(r"url: '/openapi.json'", page.text)
    assert sorted(urls) == ["/docs/assets/favicon.png", "/docs/assets/swagger-ui-bundle.js",
                            "/docs/assets/swagger-ui.css"]
    kinds = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
    for url in urls:
        r = await client.get(url, headers={"X-API-Token": ""})
        assert r.status_code == 200 and len(r.content) > 1000
        assert kinds[url[url.rindex("."):]] in r.headers["content-type"]
    bundle = (await client.get("/docs/assets/swagger-ui-bundle.js")).text
    assert "SwaggerUIBundle" in bundle


async def test_an_unknown_asset_or_a_write_on_the_docs_is_a_json_error(
        client: httpx.AsyncClient) -> None:
    for url in ("/docs/assets/nothing.js", "/docs/assets/", "/docs/assets/../app.py"):
        r = await client.get(url)
        assert r.status_code == 404 and r.json() == {"status": 404,
                                                     "message": "no such resource"}, url
    r = await client.post("/docs/assets/swagger-ui.css")
    assert r.status_code == 405 and r.json()["status"] == 405
    assert r.headers["allow"] == "GET, HEAD"
