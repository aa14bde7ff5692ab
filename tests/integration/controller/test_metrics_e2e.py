"""GET /metrics of a real `run_service` during a small simulated rollout, parsed with the
Prometheus text parser and checked against the API's /status and the simulator's own
counts. Behind the API token like every other route. The CoAPs listener's series after
real DTLS handshakes with simulated devices."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
from controller_harness import (
    COLLECTION,
    SIM_TIMING,
    DesiredRepo,
    all_in,
    endpoint,
    fleet_of,
    serving,
    settings_for,
    specs,
    until,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from reconciler.model.status import UpdateState
from reconciler.simulator import DeviceSpec, Fleet

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
        # The loop-lag watcher's first sample comes one interval (0.5 s) after the start:
        # a quick rollout can end before it, so wait for it (bounded) rather than race it.
        async with asyncio.timeout(5):
            while _value((samples := (await _scrape(http))[0]),
                         "fota_event_loop_lag_seconds_count") == 0:
                await asyncio.sleep(0.1)
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


async def test_metrics_show_the_dtls_listener_after_real_handshakes(tmp_path: Path) -> None:
    """A secured simulated device registers over CoAPs, another identity tries to
    register as it, and the same endpoint tries plain CoAP: /metrics shows each, read
    from the listener's counters at scrape time, with no identity or endpoint in a
    label."""
    repo = DesiredRepo(tmp_path / "repo", count=3)
    (tmp_path / "creds.csv").write_text(
        "identity,key,endpoint\n"
        f"id-0,{b'key-of-dev-0'.hex()},{endpoint(0)}\n"
        f"id-1,{b'key-of-dev-1'.hex()},{endpoint(1)}\n")
    settings = settings_for(repo, tmp_path / "state.db", tokens=(TOKEN,), coaps="127.0.0.1:0",
                            credentials=tmp_path / "creds.csv", security_default="psk")
    secured = DeviceSpec(endpoint(0), version="1.0", psk=(b"id-0", b"key-of-dev-0"))
    impostor = DeviceSpec(endpoint(2), version="1.0", psk=(b"id-1", b"key-of-dev-1"))
    plain = DeviceSpec(endpoint(0), version="1.0")
    async with serving(settings) as running, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.http_port}",
                              headers={"X-API-Token": TOKEN}) as http:
        coaps = Fleet(f"coaps://127.0.0.1:{running.coaps_port}", [secured, impostor],
                      timing=SIM_TIMING)
        other = Fleet(f"coap://127.0.0.1:{running.coap_port}", [plain], timing=SIM_TIMING)
        await coaps.start()
        await other.start()
        try:
            await coaps.device(endpoint(0)).wait_registered()
            await coaps.wait_all(lambda d: d.register_attempts >= 1, timeout=20,
                                 devices=[coaps.device(endpoint(2))])  # refused: 4.03
            await other.wait_all(lambda d: d.register_attempts >= 1, timeout=20)
            samples = list(_samples((await http.get("/metrics")).raise_for_status().text))
        finally:
            await coaps.stop()
            await other.stop()
    assert _value(samples, "fota_dtls_sessions") == 2  # the device and the impostor
    assert _value(samples, "fota_dtls_handshakes_total", outcome="completed") == 2
    assert _value(samples, "fota_dtls_handshakes_total", outcome="failed") == 0
    assert _value(samples, "fota_dtls_handshakes_in_progress") == 0
    assert _value(samples, "fota_dtls_cookies_sent_total") >= 2
    assert _value(samples, "fota_dtls_refusals_total", reason="identity_mismatch") >= 1
    assert _value(samples, "fota_dtls_refusals_total", reason="plain_coap") >= 1
    assert _value(samples, "fota_dtls_refusals_total", reason="unknown_identity") == 0
    assert _value(samples, "fota_dtls_sessions_ended_total", reason="revoked") == 0
    dtls = [s for s in samples if s.name.startswith("fota_dtls_")]
    assert len(dtls) == 2 + 3 + 5 + 5 + 2  # gauges, handshakes, ended, refusals, others
    assert not any("urn:dev" in str(s.labels) or "id-" in str(s.labels) for s in dtls)
