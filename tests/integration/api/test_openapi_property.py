"""Property test: requests generated from our own OpenAPI document, sent over real HTTP to
uvicorn on a loopback port, never get a 5xx, and every answer has its documented shape
(a 200 body validates against the schema /docs names, anything else is a JSON error)."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from reconciler.api import create_app, schemas
from reconciler.model.ids import ID_RE
from reconciler.store import open_reader, open_store

TOKEN = "property-token"
KNOWN_IDS = ["17dh0cf43jfhig", "17dh0cf43jfhkk", "17dh0cf43jfgnk", "17dh0cf43jfh08",
             "17dh0cf4465ae6", "17dh0cf4465ae7", "17dh0cf4465ae8"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory,
           ref: Any) -> Iterator[tuple[httpx.Client, Any]]:
    path: Path = tmp_path_factory.mktemp("api") / "fota.db"
    store = open_store(path)
    ref.populate(store)
    reader = open_reader(path)
    app = create_app(reader, tokens=[TOKEN])
    sock = socket.socket()
    # Without it the response's second write waits for the client's delayed ACK (~40 ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections wait in the backlog until uvicorn accepts them
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    port = sock.getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        yield http, app.openapi()
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()
    reader.close()
    store.close()


def path_value() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(KNOWN_IDS), st.from_regex(ID_RE, fullmatch=True),
                     st.text(min_size=1, max_size=24))


def unroutable(value: str) -> bool:
    """A value that never reaches the server as one path segment: %2F is decoded into a
    separator before routing, "." and ".." are resolved away by the client."""
    return "/" in value or value in (".", "..")


Request = tuple[str, str, str, dict[str, str], bool]


@st.composite
def requests(draw: st.DrawFn, doc: dict[str, Any]) -> Request:
    template = draw(st.sampled_from(sorted(doc["paths"])))
    values: list[str] = []

    def segment(_: re.Match[str]) -> str:
        values.append(draw(path_value()))
        return quote(values[-1], safe="")

    url = re.sub(r"\{(\w+)\}", segment, template)
    method = draw(st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "PUT", "PATCH",
                                   "DELETE"]))
    token = draw(st.sampled_from([TOKEN, TOKEN, "", "wrong", None]))
    headers = {} if token is None else {"X-API-Token": token}
    return template, method, url, headers, not any(map(unroutable, values))


def documented_model(doc: dict[str, Any], template: str) -> type[schemas.Schema]:
    ok = doc["paths"][template]["get"]["responses"]["200"]["content"]["application/json"]
    model: type[schemas.Schema] = getattr(schemas, ok["schema"]["$ref"].rsplit("/", 1)[1])
    return model


def test_generated_requests_never_get_a_server_error_and_match_their_schema(
        served: tuple[httpx.Client, Any]) -> None:
    http, doc = served

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(requests(doc))
    @example(("/events", "HEAD", "/events", {"X-API-Token": TOKEN}, True))  # the endless
    @example(("/events", "GET", "/events", {"X-API-Token": TOKEN}, True))  # stream, always
    def check(request: Request) -> None:
        template, method, url, headers, routable = request
        if template == "/events" and method == "GET":
            check_stream(http, url, headers, doc)
            return
        r = http.request(method, url, headers=headers)
        assert r.status_code < 500, (method, url, r.text)
        if not routable:  # e.g. POST /collections/%2F is POST /collections//: another path
            assert r.status_code in (400, 401, 404, 405), (method, url, r.status_code)
            if method != "HEAD":
                body = r.json()
                assert set(body) == {"status", "message"} and body["status"] == r.status_code
            return
        documented = doc["paths"][template]["get" if method == "HEAD" else method.lower()]
        assert str(r.status_code) in documented["responses"], (method, url, r.status_code)
        if method == "HEAD":  # GET's status and headers over real HTTP, no body
            assert r.content == b""
            # GET of the endless /events is read as a stream: only its status
            with http.stream("GET", url, headers=headers) as got:
                assert r.status_code == got.status_code
            if not r.headers["content-type"].startswith("text/event-stream"):
                assert int(r.headers["content-length"]) > 0
            return
        if r.status_code == 200 and r.headers["content-type"].startswith("text/plain"):
            assert template == "/metrics"  # the Prometheus text format, not JSON
            assert any(text_string_to_metric_families(r.text))
            return
        body = r.json()
        if r.status_code == 200:
            assert method == "GET"
            documented_model(doc, template).model_validate(body)
        else:
            assert set(body) == {"status", "message"} and body["status"] == r.status_code
            assert r.status_code in (400, 401, 404, 405, 503)

    check()


def check_stream(http: httpx.Client, url: str, headers: dict[str, str],
                 doc: dict[str, Any]) -> None:
    """The endless /events: its status and first bytes, then hang up."""
    with http.stream("GET", url, headers=headers) as r:
        assert str(r.status_code) in doc["paths"]["/events"]["get"]["responses"]
        if r.status_code == 200:
            assert r.headers["content-type"].startswith("text/event-stream")
            assert next(r.iter_lines()).startswith("retry: ")
        else:
            body = json.loads(r.read())
            assert set(body) == {"status", "message"} and body["status"] == r.status_code
