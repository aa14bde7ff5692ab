"""GET /metrics of a real `run_service` during a small simulated rollout, parsed with the
Prometheus text parser and checked against the API's /status and the simulator's own
counts. Behind the API token like every other route."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
from controller_harness import (
    COLLECTION,
    DesiredRepo,
    all_in,
    fleet_of,
    serving,
    settings_for,
    specs,
    until,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from reconciler.model.status import UpdateState

TOKEN = "metrics-token"
COUNT = 4


def _samples(text: str) -> Iterator[Sample]:
    for family in text_string_to_metric_families(text):
        yield from family.samples


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples
             if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, found)
    return found[0]


async def _scrape(http: httpx.AsyncClient) -> tuple[list[Sample], dict[str, object]]:
    """/metrics, then /status: the same devices, looked at a moment apart."""
    text = (await http.get("/metrics")).raise_for_status().text
    status = (await http.get("/status")).raise_for_status().json()
    collection = next(c for c in status["collections"] if c["collectionId"] == COLLECTION)
    return list(_samples(text)), {**collection, "appliedRevision": status["appliedRevision"]}


def _devices(samples: list[Sample]) -> dict[str, float]:
    return {s.labels["state"]: s.value for s in samples
            if s.name == "fota_devices" and s.labels["collection"] == COLLECTION}


async def test_metrics_follow_a_rollout_and_agree_with_the_api(tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=COUNT)
    settings = settings_for(repo, tmp_path / "state.db", tokens=(TOKEN,))
    async with serving(settings) as running, fleet_of(running, specs(COUNT)) as fleet, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.http_port}",
                              headers={"X-API-Token": TOKEN}) as http:
        ctl = running.controller
        assert (await http.get("/metrics", headers={"X-API-Token": "wrong"})).status_code == 401
        await until(ctl, all_in(ctl, UpdateState.CURRENT))
        head = repo.set_target("2.0")
        await until(ctl, lambda: ctl.desired.revision == head)
        seen: set[str] = set()
        async with asyncio.timeout(30):
            while not all(d.version == "2.0" for d in fleet.devices()):
                samples, status = await _scrape(http)
                devices = _devices(samples)
                seen |= set(devices)
                assert sum(devices.values()) == status["devices"] == COUNT
                assert _value(samples, "fota_rollout_halted", collection=COLLECTION) == 0
                with contextlib.suppress(TimeoutError):
                    await fleet.wait_all(lambda d: d.version == "2.0", timeout=0.05)
        await until(ctl, all_in(ctl, UpdateState.CURRENT))
        samples, status = await _scrape(http)
        assert seen - {"Current"}, "never scraped a device mid-update"

    assert _devices(samples) == status["states"] == {"Current": COUNT}
    assert _value(samples, "fota_rollout_progress_ratio", collection=COLLECTION) == 1.0
    assert _value(samples, "fota_downloads_in_progress", collection=COLLECTION) == 0
    assert _value(samples, "fota_source_info", applied_revision=status["appliedRevision"],
                  branch="main") == 1
    assert _value(samples, "fota_source_errors") == 0
    # what the devices saw, counted by the server that sent it
    executes = sum(d.executes for d in fleet.devices())
    assert _value(samples, "fota_lwm2m_requests_total", operation="execute",
                  outcome="ok") == executes == COUNT
    assert _value(samples, "fota_firmware_blocks_served_total") >= sum(
        d.blocks for d in fleet.devices()) > 0
    package = (repo.root / f"images/{COLLECTION}/fw-2.0.bin").stat().st_size
    assert _value(samples, "fota_firmware_served_bytes_total") >= COUNT * package
    assert _value(samples, "fota_lwm2m_registrations_total") >= COUNT
    assert _value(samples, "fota_lwm2m_registrations_current") == COUNT
    for histogram in ("fota_reconcile_duration_seconds", "fota_store_write_seconds",
                      "fota_event_loop_lag_seconds"):
        assert _value(samples, f"{histogram}_count") > 0, histogram
    # label values come from small fixed sets: no device or endpoint ever names a series
    assert not any(s.name.startswith("fota_") and "urn:dev" in str(s.labels)
                   for s in samples)
