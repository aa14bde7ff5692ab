"""The dashboard over HTTP (the app in-process, a real SQLite store): the token rule
through the session cookie, keyset paging and filters against the API's own lists, and
the halted rollout and source error views. The browser tests cover the live page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fleet import CID, NEW, device_id, fleet_store

from reconciler.api import create_app
from reconciler.api import session as ui_session
from reconciler.model.observed import DeviceEvent, DeviceProgress
from reconciler.model.status import Condition, ConditionType, UpdateState
from reconciler.store import SqliteStore, open_reader

TOKEN = "ui-test-token"
COUNT = 130  # three pages of 50


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ui") / "fota.db"


@pytest.fixture(scope="module")
def store(path: Path) -> Iterator[SqliteStore]:
    """One fleet for the module (filling it is most of the cost); a test that writes to
    it touches only what it asserts on."""
    opened = fleet_store(path, COUNT)
    yield opened
    opened.close()


@pytest.fixture
async def http(path: Path, store: SqliteStore) -> AsyncIterator[httpx.AsyncClient]:
    reader = open_reader(path)  # a new app per test: its own login rate limit
    app = create_app(reader, tokens=[TOKEN])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://ui.test") as client:
        yield client
    reader.close()


async def sign_in(http: httpx.AsyncClient) -> None:
    answer = await http.post("/ui/login", data={"token": TOKEN, "next": "/ui"})
    assert answer.status_code == 303 and answer.headers["location"] == "/ui"


def ids_on(page: str) -> list[str]:
    return re.findall(r'<tr data-device="([^"]+)">', page)


async def test_without_a_session_a_page_sends_the_browser_to_the_login_form(
        http: httpx.AsyncClient) -> None:
    answer = await http.get("/ui/devices?state=Pending")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?next=%2Fui%2Fdevices%3Fstate%3DPending"
    assert (await http.get("/ui", headers={"X-Fragment": "live"})).status_code == 401
    form = await http.get("/ui/login")
    assert form.status_code == 200 and 'type="password" name="token"' in form.text


async def test_the_login_sets_an_httponly_same_site_cookie_that_is_not_the_token(
        http: httpx.AsyncClient) -> None:
    answer = await http.post("/ui/login", data={"token": TOKEN, "next": "/ui/devices"})
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/devices"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=43200" in cookie
    assert TOKEN not in cookie
    assert (await http.get("/ui")).status_code == 200
    # The cookie stands for the token on the API too: EventSource cannot send a header.
    assert (await http.get("/status")).status_code == 200
    await http.post("/ui/logout")
    assert (await http.get("/status")).status_code == 401


async def test_a_wrong_token_a_forged_or_expired_cookie_and_an_outside_next_are_refused(
        http: httpx.AsyncClient) -> None:
    wrong = await http.post("/ui/login", data={"token": "guess"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    old = ui_session.issue(TOKEN, 1_000_000)  # issued long ago
    for value in (old, "99999999999.00", "garbage"):
        http.cookies.set(ui_session.COOKIE, value)
        assert (await http.get("/status")).status_code == 401
        assert (await http.get("/ui")).status_code == 303
    http.cookies.clear()
    away = await http.post("/ui/login", data={"token": TOKEN, "next": "https://evil.test/"})
    assert away.headers["location"] == "/ui"


async def test_refused_logins_are_rate_limited(http: httpx.AsyncClient) -> None:
    codes = [(await http.post("/ui/login", data={"token": f"guess{n}"})).status_code
             for n in range(11)]
    assert codes == [401] * 10 + [429]
    # Even the right token waits: the limit is on attempts, not on who is guessing.
    assert (await http.post("/ui/login", data={"token": TOKEN})).status_code == 429


async def test_keyset_pages_walk_every_device_once_in_the_api_order(
        http: httpx.AsyncClient) -> None:
    await sign_in(http)
    seen: list[str] = []
    url: str | None = "/ui/devices"
    while url is not None:
        page = (await http.get(url)).text
        seen += ids_on(page)
        found = re.search(r'<a href="([^"]+)" id="next-page"', page)
        url = found[1].replace("&amp;", "&") if found else None
    api = await http.get(f"/collections/{CID}/devices")
    assert seen == [d["deviceId"] for d in api.json()["devices"]]
    assert len(seen) == COUNT


async def test_filters_by_state_and_tag_agree_with_the_api(http: httpx.AsyncClient) -> None:
    await sign_in(http)
    devices = (await http.get(f"/collections/{CID}/devices")).json()["devices"]
    for state in ("Current", "Downloading", "Pending"):
        page = (await http.get(f"/ui/devices?state={state}&tag=site%3Ds1")).text
        expected = [d["deviceId"] for d in devices
                    if d["firmware"]["state"] == state and d["tags"]["site"] == "s1"]
        assert ids_on(page) == expected[:50] and expected
    bad = await http.get("/ui/devices?state=Nonsense")
    assert 'id="filter-error"' in bad.text and ids_on(bad.text) == []


async def test_the_overview_counts_match_status_and_a_halt_says_how_to_resume(
        http: httpx.AsyncClient, store: SqliteStore) -> None:
    store.put_collection_status(CID, {
        "halted": True, "failureThreshold": "2",
        "reason": "rollout halted: 2 of 130 devices failed (threshold 2)"})
    await sign_in(http)
    page = (await http.get("/ui")).text
    status = (await http.get("/status")).json()["collections"]
    [mine] = [c for c in status if c["collectionId"] == CID]
    current = mine["states"]["Current"]
    assert f'data-current="{current}" data-total="{COUNT}"' in page
    assert f'data-percent="{current * 100 // COUNT}"' in page
    halted = page[page.index('id="halted"'):page.index('id="collections"')]
    assert "rollout halted: 2 of 130 devices failed (threshold 2)" in halted
    assert "raises rollout.failureThreshold (now 2)" in halted


async def test_source_errors_show_file_and_line_apart_from_the_message(
        http: httpx.AsyncClient, store: SqliteStore) -> None:
    store.set_source_status({"url": "/srv/fleet", "branch": "main",
                             "applied_revision": "a1b2c3d4e5f6a7b8",
                             "head_revision": "ffffeeee00001111",
                             "errors": ["manifests/c0ll00/devices/all.yaml:12: devices[3]"
                                        ".endpoint: field required", "git: fetch failed"]})
    await sign_in(http)
    page = (await http.get("/ui")).text
    assert ('<code class="where">manifests/c0ll00/devices/all.yaml:12</code> '
            '<span>devices[3].endpoint: field required</span>') in page
    assert "<span>git: fetch failed</span>" in page


async def test_a_device_page_shows_its_state_conditions_and_timeline(
        http: httpx.AsyncClient, store: SqliteStore) -> None:
    device = device_id(7)
    store.put_progress(DeviceProgress(device, NEW, UpdateState.DOWNLOADING, "block 4 of 9",
                                      attempts=1),
                       [DeviceEvent(device, 1_700_000_000 + n, "state", f"step <{n}>", "a1b2c3")
                        for n in range(3)])
    store.put_conditions(device, [Condition(ConditionType.READY, False, "Downloading",
                                            "block 4 of 9", 1_700_000_000, "a1b2c3")])
    await sign_in(http)
    page = (await http.get(f"/ui/devices/{device}")).text
    assert 'class="state state-Downloading"' in page and "block 4 of 9" in page
    assert '<tr data-condition="Ready"><td>Ready</td><td class="muted">false</td>' in page
    # Newest first, escaped, with the time in UTC.
    steps = re.findall(r'<span class="message">step &lt;(\d)&gt;</span>', page)
    assert steps == ["2", "1", "0"]
    assert "2023-11-14 22:13:22 UTC" in page
    missing = await http.get("/ui/devices/d999999")
    assert missing.status_code == 404


async def test_an_open_api_has_an_open_dashboard_and_no_sign_out(tmp_path: Path) -> None:
    store = fleet_store(tmp_path / "open.db", 3)
    reader = open_reader(tmp_path / "open.db")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(reader)),
                                 base_url="http://ui.test") as http:
        page = await http.get("/ui")
        assert page.status_code == 200 and "Sign out" not in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        assert (await http.get("/ui/static/ui.js")).headers["content-type"].startswith(
            "text/javascript")
    reader.close()
    store.close()
