"""/events (Server-Sent Events) and /status/events over real HTTP: the app on uvicorn on
a loopback port, the store written as a rollout writes it, the stream woken by the
store's EventHub. Resume with Last-Event-ID, filters, the cap on streams, a client that
stops reading, shutdown."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from reconciler.api import create_app
from reconciler.api.events import StreamLimits
from reconciler.model.observed import DeviceEvent, DeviceProgress
from reconciler.model.status import UpdateState
from reconciler.store import EventRetention, SqliteStore, open_reader

TOKEN = "s3cret-token"
LIMITS = StreamLimits(max_clients=2, keepalive=0.3, send_timeout=0.5, page=50)


def write(store: SqliteStore, device: str, *messages: str) -> None:
    """What the controller does on a state change: progress and its events together."""
    events = [DeviceEvent(device, 1_700_000_000.0, "state", m, "r1") for m in messages]
    store.put_progress(DeviceProgress(device, None, UpdateState.DOWNLOADING), events)


@asynccontextmanager
async def served(store: SqliteStore, path: Path,
                 limits: StreamLimits = LIMITS) -> AsyncIterator[str]:
    """The app on uvicorn in this loop; its socket listens before uvicorn starts, so
    requests wait in the backlog instead of the test polling for readiness."""
    reader = open_reader(path)
    app = create_app(reader, tokens=[TOKEN], events=store.event_hub, stream_limits=limits)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        store.event_hub.close()  # as fota serve does: open streams end
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()
        reader.close()


@asynccontextmanager
async def stream(base: str, query: str = "", **headers: str
                 ) -> AsyncIterator[tuple[httpx.Response, AsyncIterator[str]]]:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http, \
            http.stream("GET", f"/events{query}",
                        headers={"X-API-Token": TOKEN, **headers}) as response:
        yield response, response.aiter_lines()


async def messages(lines: AsyncIterator[str], count: int) -> list[dict[str, Any]]:
    """The next `count` SSE messages (id checked against the data's), comments skipped."""
    found: list[dict[str, Any]] = []
    event_id = None
    async with asyncio.timeout(10):
        async for line in lines:
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                assert data["id"] == event_id
                found.append(data)
                if len(found) == count:
                    return found
    raise AssertionError(f"stream ended after {len(found)} of {count} messages")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "fota.db"


async def test_a_client_resuming_with_last_event_id_gets_exactly_the_events_it_missed(
        store: SqliteStore, path: Path, ref: Any) -> None:
    async with served(store, path) as base:
        async with stream(base) as (response, lines):
            assert response.headers["content-type"].startswith("text/event-stream")
            write(store, ref.device, "a", "b")
            write(store, ref.device2, "c")
            seen = await messages(lines, 3)
        assert [m["message"] for m in seen] == ["a", "b", "c"]
        assert seen[0]["deviceId"] == ref.device and seen[0]["collectionId"] == ref.cid
        write(store, ref.device, "missed 1", "missed 2")  # while no client is connected
        write(store, ref.stranger, "missed 3")
        async with stream(base, **{"Last-Event-ID": str(seen[-1]["id"])}) as (_, lines):
            missed = await messages(lines, 3)
            write(store, ref.device2, "live")
            [live] = await messages(lines, 1)
        assert [m["message"] for m in missed] == ["missed 1", "missed 2", "missed 3"]
        assert missed[0]["id"] > seen[-1]["id"] and live["message"] == "live"


async def test_filters_by_collection_and_device_and_keepalive_comments_when_quiet(
        store: SqliteStore, path: Path, ref: Any) -> None:
    async with served(store, path) as base, \
            stream(base, f"?collection={ref.other_cid}") as (_, by_collection), \
            stream(base, f"?device={ref.device2}&since=0") as (_, by_device):
        write(store, ref.device, "not for either")
        write(store, ref.stranger, "other collection")
        write(store, ref.device2, "device two")
        [one] = await messages(by_collection, 1)
        [two] = await messages(by_device, 1)
        assert (one["deviceId"], one["message"]) == (ref.stranger, "other collection")
        assert (two["deviceId"], two["message"]) == (ref.device2, "device two")
        async with asyncio.timeout(5):  # nothing more for this collection: a comment
            assert await anext(line async for line in by_collection
                               if line.startswith(":")) == ": keepalive"


async def test_two_streams_following_a_rollouts_commits_get_every_event_once_in_order(
        store: SqliteStore, path: Path, ref: Any) -> None:
    """Commits spread over time, as a rollout makes them: each stream gathers them into
    pages (one frame cache serves both), and neither loses, repeats or reorders one."""
    async with served(store, path) as base, stream(base) as (_, everything), \
            stream(base, f"?device={ref.device2}") as (_, one_device):
        for n in range(60):  # more than a page (50), a commit every few milliseconds
            write(store, (ref.device, ref.device2)[n % 2], f"step {n}")
            await asyncio.sleep(0.003)  # the spacing of a rollout's commits
        seen = await messages(everything, 60)
        mine = await messages(one_device, 30)
    assert [m["message"] for m in seen] == [f"step {n}" for n in range(60)]
    assert [m["id"] for m in seen] == sorted({m["id"] for m in seen})
    assert [m["message"] for m in mine] == [f"step {n}" for n in range(1, 60, 2)]
    assert {m["deviceId"] for m in mine} == {ref.device2}


async def test_bad_filters_and_cursors_get_the_json_error_before_any_stream(
        store: SqliteStore, path: Path, ref: Any) -> None:
    async with served(store, path) as base, httpx.AsyncClient(base_url=base) as http:
        cases = {f"/events?collection={ref.cid}X": 400, "/events?device=17dh0cf44000aa": 404,
                 "/events?since=-1": 400, f"/events?device={ref.device}": 401}
        for url, status in cases.items():
            headers = {} if status == 401 else {"X-API-Token": TOKEN}
            r = await http.get(url, headers=headers)
            assert (r.status_code, r.json()["status"]) == (status, status), url
        r = await http.get("/events", headers={"X-API-Token": TOKEN, "Last-Event-ID": "x"})
        assert r.status_code == 400 and "Last-Event-ID" in r.json()["message"]
        head = await http.head("/events", headers={"X-API-Token": TOKEN})
        assert (head.status_code, head.content) == (200, b"")


async def test_streams_beyond_the_cap_get_503_and_a_closed_stream_frees_its_slot(
        store: SqliteStore, path: Path) -> None:
    async with served(store, path) as base, httpx.AsyncClient(base_url=base) as http:
        async with stream(base) as (first, _), stream(base) as (second, _):
            assert first.status_code == second.status_code == 200
            refused = await http.get("/events", headers={"X-API-Token": TOKEN})
            assert refused.status_code == 503 and refused.json()["status"] == 503
            assert refused.headers["retry-after"] == "5"
        async with asyncio.timeout(30):  # the server learns of the disconnects, then admits
            while (await _status_of_new_stream(base)) != 200:
                await asyncio.sleep(0.05)


async def _status_of_new_stream(base: str) -> int:
    async with stream(base) as (response, _):
        return response.status_code


async def test_a_client_that_stops_reading_is_dropped_not_buffered(
        store: SqliteStore, path: Path, ref: Any) -> None:
    limits = StreamLimits(max_clients=1, keepalive=5, send_timeout=0.3, page=100)
    async with served(store, path, limits) as base:
        host, port = base.removeprefix("http://").split(":")
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect((host, int(port)))
        stalled.sendall(f"GET /events?since=0 HTTP/1.1\r\nHost: x\r\nX-API-Token: {TOKEN}"
                        "\r\n\r\n".encode())
        try:
            # 8 MB of events, more than any socket buffer on the way; never read.
            for n in range(40):
                write(store, ref.device, *(f"{n}-{i} " + "x" * 1000 for i in range(200)))
            async with asyncio.timeout(30):  # dropped: its slot is free again
                while (await _status_of_new_stream(base)) != 200:
                    await asyncio.sleep(0.1)
        finally:
            stalled.close()


async def test_closing_the_hub_at_shutdown_ends_open_streams(
        store: SqliteStore, path: Path) -> None:
    async with served(store, path) as base, stream(base) as (_, lines):
        store.event_hub.close()
        async with asyncio.timeout(5):
            rest = [line async for line in lines]
        assert all(not line.startswith("data:") for line in rest)


async def test_status_events_pages_the_log_with_a_next_cursor(
        store: SqliteStore, client: httpx.AsyncClient, ref: Any) -> None:
    write(store, ref.device, "1", "2", "3")
    write(store, ref.stranger, "4")
    first = (await client.get("/status/events?limit=2")).json()
    assert [e["message"] for e in first["events"]] == ["1", "2"]
    rest = (await client.get(f"/status/events?since={first['next']}")).json()
    assert [e["message"] for e in rest["events"]] == ["3", "4"]
    empty = (await client.get(f"/status/events?since={rest['next']}")).json()
    assert empty == {"events": [], "next": rest["next"], "prunedThrough": 0, "gap": False}
    other = (await client.get(f"/status/events?collection={ref.other_cid}")).json()
    assert [(e["deviceId"], e["collectionId"]) for e in other["events"]] == [
        (ref.stranger, ref.other_cid)]
    mine = (await client.get(f"/status/events?device={ref.device}&since=0&limit=1")).json()
    assert [e["message"] for e in mine["events"]] == ["1"]


async def test_a_cursor_behind_the_pruned_log_is_told_of_the_gap_then_gets_what_is_left(
        store: SqliteStore, path: Path, ref: Any) -> None:
    write(store, "17dh0cf4465aff", *"abcde")  # a device no desired state has: all due
    write(store, ref.device, "kept 1", "kept 2")
    pruned = store.prune_events(EventRetention(max_count=2), 1_700_000_000.0)
    assert pruned.deleted == 5
    async with served(store, path) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            page = (await http.get("/status/events?since=0",
                                   headers={"X-API-Token": TOKEN})).json()
            current = (await http.get(f"/status/events?since={pruned.through}",
                                      headers={"X-API-Token": TOKEN})).json()
        assert (page["prunedThrough"], page["gap"]) == (pruned.through, True)
        assert [e["message"] for e in page["events"]] == ["kept 1", "kept 2"]
        assert (current["gap"], len(current["events"])) == (False, 2)
        async with stream(base, **{"Last-Event-ID": "2"}) as (_, lines):
            head = [await anext(lines) for _ in range(6)]  # retry, gap event, first event
    assert head[2:4] == ["event: gap",
                         f'data: {{"after":2,"prunedThrough":{pruned.through}}}']
    assert head[5].startswith("id: ") and int(head[5][4:]) > pruned.through


@pytest.mark.parametrize("query,status", [
    ("limit=0", 400), ("limit=1001", 400), ("since=-1", 400), ("since=abc", 400),
    ("collection=nope!", 400), ("device=17dh0cf44000aa", 404)])
async def test_status_events_refuses_bad_parameters_with_the_json_error(
        client: httpx.AsyncClient, query: str, status: int) -> None:
    r = await client.get(f"/status/events?{query}")
    assert (r.status_code, r.json()["status"]) == (status, status)
