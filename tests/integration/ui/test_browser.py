"""The dashboard in a real browser (headless Debian chromium through Playwright): sign in,
read each view and check its numbers against the API, follow a live rollout of the
simulator fleet until the bar reaches 100 % without reloading, page through the device
table, and see a halted rollout and source errors. One browser for the module; every
step saves a screenshot to test-artifacts/ui/."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from browser import ARGS, CHROMIUM, check_available, screenshot_path
from controller_harness import (
    COLLECTION,
    SIM_TIMING,
    DesiredRepo,
    all_in,
    fleet_of,
    serving,
    settings_for,
    specs,
    until,
)
from fleet import CID, fleet_store

from reconciler.api import create_app
from reconciler.model.status import UpdateState
from reconciler.simulator.faults import Fault
from reconciler.store import open_reader

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]
TOKEN = "browser-test-token"
# Every value the collection's bar shows, in order, kept by the page itself: a swap of
# the live part re-creates the bar, and the observer notes its percent each time; and
# when the page asked for its live part.
RECORD_PERCENTS = """(cid) => {
  window.__seen = [];
  const note = () => {
    const bar = document.querySelector(`article[data-collection="${cid}"] .progress`);
    if (bar) window.__seen.push(Number(bar.dataset.percent));
  };
  note();
  new MutationObserver(note).observe(document.getElementById("live"),
                                     {childList: true, subtree: true});
  window.__unreloaded = true;
  // When ui.js asks for the live part again, by the page's clock.
  window.__asked = [];
  const fetchBefore = window.fetch;
  window.fetch = (url, options) => {
    if (options && options.headers && options.headers["X-Fragment"] === "live")
      window.__asked.push(performance.now());
    return fetchBefore(url, options);
  };
}"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def context(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    check_available()
    from playwright.async_api import async_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh user-data dir
    async with async_playwright() as pw:
        browser = await pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=ARGS,
            viewport={"width": 1280, "height": 800})
        try:
            yield browser
        finally:
            await browser.close()


async def shot(page: Any, name: str) -> None:
    await page.screenshot(path=str(screenshot_path(name)), full_page=True)


async def bar_of(page: Any, cid: str) -> dict[str, str]:
    bar = page.locator(f'article[data-collection="{cid}"] .progress').first
    return {k: await bar.get_attribute(f"data-{k}") for k in ("percent", "current", "total")}


async def test_a_live_rollout_fills_the_bar_to_100_percent_without_a_reload(
        context: Any, tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=6, target="1.0", rollout={"maxConcurrent": 2})
    settings = settings_for(repo, tmp_path / "state.db", tokens=[TOKEN])
    # Slow blocks: a device takes ~1.5 s to download, the rollout several refreshes.
    slow = replace(SIM_TIMING, slow_block_delay=0.3)
    async with serving(settings) as running, \
            fleet_of(running, specs(6, faults=frozenset({Fault.SLOW})), slow), \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.http_port}",
                              headers={"X-API-Token": TOKEN}) as api:
        ctl = running.controller
        await until(ctl, all_in(ctl, UpdateState.CURRENT))
        page = await context.new_page()
        await page.goto(f"{api.base_url}/ui")
        assert "/ui/login" in page.url  # a token is configured: the form first
        await shot(page, "login")
        await page.fill("input[name=token]", TOKEN)
        await page.click("form button[type=submit]")
        await page.wait_for_url(f"{api.base_url}/ui")
        [before] = (await api.get("/status")).json()["collections"]
        assert await bar_of(page, COLLECTION) == {
            "percent": "100", "current": str(before["states"]["Current"]), "total": "6"}
        await shot(page, "overview-converged")

        await page.evaluate(RECORD_PERCENTS, COLLECTION)
        started = time.monotonic()
        head = repo.set_target("2.0")
        await page.wait_for_function("() => window.__seen.some(p => p < 100)", timeout=30_000)
        await shot(page, "overview-rolling-out")
        await page.wait_for_function(
            """(head) => document.getElementById("applied-revision").textContent === head
                 && window.__seen[window.__seen.length - 1] === 100""",
            arg=head[:12], timeout=60_000)
        await shot(page, "overview-rolled-out")
        # Dozens of events a second arrive during the rollout; the page asks at most once a
        # second (ui.js's MIN_GAP_MS), so a busy fleet never turns into a request storm.
        elapsed = time.monotonic() - started
        refreshes = await page.evaluate("window.__asked")  # ms, the page's own clock
        assert 2 <= len(refreshes) <= elapsed + 2, (len(refreshes), elapsed)
        assert all(b - a >= 990 for a, b in itertools.pairwise(refreshes)), refreshes
        assert await page.evaluate("window.__unreloaded") is True  # swapped, never reloaded
        seen = await page.evaluate("window.__seen")
        assert seen[-1] == 100 and any(0 <= p < 100 for p in seen)
        [after] = (await api.get("/status")).json()["collections"]
        assert after["states"] == {"Current": 6}
        assert (await bar_of(page, COLLECTION))["current"] == "6"
        assert await page.locator("#live-status").text_content() == "live"  # on /events
        target = page.locator(f'article[data-collection="{COLLECTION}"] .target')
        assert await target.text_content() == "2.0"

        await check_device_views(page, api)
        await check_source_errors(page, api, repo)
        await page.close()


async def check_device_views(page: Any, api: httpx.AsyncClient) -> None:
    await page.goto(f"{api.base_url}/ui/devices?state=Current")
    rows = page.locator("table.devices tbody tr[data-device]")
    listed = (await api.get(f"/collections/{COLLECTION}/devices")).json()["devices"]
    assert [await r.get_attribute("data-device") for r in await rows.all()] == [
        d["deviceId"] for d in listed if d["firmware"]["state"] == "Current"]
    await shot(page, "devices-current")
    first = listed[0]["deviceId"]
    before = (await api.get(f"/status/devices/{first}")).json()
    await page.click(f'tr[data-device="{first}"] a')
    await page.wait_for_url(f"**/ui/devices/{first}")
    after = (await api.get(f"/status/devices/{first}")).json()
    ready = next(c for c in after["conditions"] if c["type"] == "Ready")
    cell = page.locator('tr[data-condition="Ready"] td').nth(1)
    assert await cell.text_content() == str(ready["status"]).lower() == "true"
    # Newest first, as the API's last events (an event may land between two reads).
    shown = await page.locator("ol.timeline li .message").all_text_contents()
    newest = [[e["message"] for e in reversed(s["events"])] for s in (before, after)]
    assert any(shown[:len(n)] == n and n for n in newest)
    await shot(page, "device")


async def check_source_errors(page: Any, api: httpx.AsyncClient, repo: DesiredRepo) -> None:
    broken = repo.root / f"manifests/{COLLECTION}/devices/all.yaml"
    broken.write_text(broken.read_text() + "- {\"deviceId\": \"BAD!\"}\n")
    repo.repo.git.add(A=True)
    repo.repo.index.commit("a broken device line")
    await until_status(api, lambda s: bool(s["source"]["errors"]))
    await page.goto(f"{api.base_url}/ui")
    errors = (await api.get("/status")).json()["source"]["errors"]
    where = await page.locator("#source-errors code.where").all_text_contents()
    assert where and all(f"{w}: " in e for w, e in zip(where, errors, strict=True))
    assert where[0].startswith(f"manifests/{COLLECTION}/devices/all.yaml:")
    await shot(page, "overview-source-errors")


async def until_status(api: httpx.AsyncClient, predicate: Any, attempts: int = 100) -> None:
    """The service's poll of the source is timed (0.3 s here): ask until it has run."""
    for _ in range(attempts):
        if predicate((await api.get("/status")).json()):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the status never showed it")


@pytest_asyncio.fixture(loop_scope="module")  # the server runs in the tests' loop
async def halted_app(tmp_path: Path) -> AsyncIterator[str]:
    """The app over a store with 130 devices and a halted rollout, on a loopback port."""
    store = fleet_store(tmp_path / "fota.db", 130)
    store.put_collection_status(CID, {"halted": True, "failureThreshold": "2",
                                      "reason": "rollout halted: 2 of 130 devices failed"})
    reader = open_reader(tmp_path / "fota.db")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(create_app(reader), log_level="warning",
                                           lifespan="off", timeout_graceful_shutdown=5))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)  # uvicorn offers no event for "listening"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()
        reader.close()
        store.close()


async def test_a_halted_rollout_and_the_device_pages_in_the_browser(
        context: Any, halted_app: str) -> None:
    page = await context.new_page()
    await page.goto(f"{halted_app}/ui")  # no token configured: open, like the API
    halted = page.locator(f'.halted-rollout[data-collection="{CID}"]')
    assert await halted.locator(".reason").text_content() == (
        "rollout halted: 2 of 130 devices failed")
    assert "raises rollout.failureThreshold (now 2)" in await halted.locator(
        ".hint").text_content()
    await shot(page, "overview-halted")
    async with httpx.AsyncClient(base_url=halted_app) as api:
        listed = [d["deviceId"] for d in
                  (await api.get(f"/collections/{CID}/devices")).json()["devices"]]
    await page.goto(f"{halted_app}/ui/devices")
    await page.select_option("select[name=state]", "Pending")
    await page.fill("input[name=tag]", "site=s1")
    await page.click(".filters button")
    await page.wait_for_url("**/ui/devices?collection=&state=Pending&tag=site%3Ds1")
    shown = [await r.get_attribute("data-device")
             for r in await page.locator("tr[data-device]").all()]
    assert shown and all(int(d[1:]) % 3 == 1 for d in shown)
    await shot(page, "devices-filtered")
    await page.goto(f"{halted_app}/ui/devices")
    walked: list[str] = []
    while True:
        walked += [await r.get_attribute("data-device")
                   for r in await page.locator("tr[data-device]").all()]
        following = page.locator("#next-page")
        if not await following.count():
            break
        async with page.expect_navigation():
            await following.click()
    assert walked == listed
    await shot(page, "devices-last-page")
    assert await page.title() == "Devices · fota-gitops"
    await page.close()  # its /events stream with it, before the server stops
