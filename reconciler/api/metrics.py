"""`GET /metrics`: the Prometheus text exposition of one process, behind the API token.

`metrics_router(reader, metrics)` serves the process's registry (`observe.Metrics`: what
the LwM2M server, store and controller counted) with `FleetCollector` registered on it:
the fleet's figures read from the store at scrape time (devices per collection and
state from the triggers' tallies, the rollout snapshot the controller writes, the
source's revisions and errors), a few rows whatever the fleet's size. Built by
`app.create_app`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from reconciler.api.openapi import errors
from reconciler.api.routes import refuse_writes
from reconciler.model.status import UpdateState
from reconciler.observe.metrics import Metrics
from reconciler.store import CollectionStatus, StoreReader


class FleetCollector(Collector):
    """Gauges of the fleet, read from the store on each scrape."""

    def __init__(self, reader: StoreReader) -> None:
        self._reader = reader

    def collect(self) -> Iterator[Any]:
        statuses = self._reader.collection_statuses()
        yield _devices(statuses)
        yield from _rollouts(statuses)
        yield from _source(self._reader.source_status(), self._reader.applied_revision())


def _devices(statuses: Iterable[CollectionStatus]) -> GaugeMetricFamily:
    family = GaugeMetricFamily("fota_devices", "Devices per collection and firmware state "
                               "(state \"\" when nothing is targeted)",
                               labels=["collection", "state"])
    for status in statuses:
        untargeted = status.devices - sum(status.counts.values())
        for state, n in sorted(status.counts.items()):
            family.add_metric([status.collection_id, state], n)
        if untargeted:
            family.add_metric([status.collection_id, ""], untargeted)
    return family


def _rollouts(statuses: Iterable[CollectionStatus]) -> Iterator[GaugeMetricFamily]:
    labels = ["collection"]
    progress = GaugeMetricFamily("fota_rollout_progress_ratio", "Share of the targeted "
                                 "devices that run their target (Current)", labels=labels)
    downloading = GaugeMetricFamily("fota_downloads_in_progress",
                                    "Devices downloading their target now", labels=labels)
    in_flight = GaugeMetricFamily("fota_rollout_in_flight", "Devices between the first "
                                  "Object 5 step and verification", labels=labels)
    failed = GaugeMetricFamily("fota_rollout_failed", "Devices in a terminal failure "
                               "(UpdateFailed, Reverted)", labels=labels)
    halted = GaugeMetricFamily("fota_rollout_halted", "1 while the failure threshold holds "
                               "new starts of the collection", labels=labels)
    statuses = list(statuses)
    for status in statuses:
        labels_of = [status.collection_id]
        targeted = sum(status.counts.values())
        current = status.counts.get(UpdateState.CURRENT.value, 0)
        progress.add_metric(labels_of, current / targeted if targeted else 1.0)
        downloading.add_metric(labels_of, status.counts.get(UpdateState.DOWNLOADING.value, 0))
        in_flight.add_metric(labels_of, _number(status.rollout.get("inFlight")))
        failed.add_metric(labels_of, _number(status.rollout.get("failed")))
        halted.add_metric(labels_of, 1.0 if status.rollout.get("halted") else 0.0)
    yield from (progress, downloading, in_flight, failed, halted)
    yield from _waves(statuses)


_WAVE_FIGURES = (
    ("members", "fota_rollout_wave_devices", "Devices in the wave (the rollout's waves: "
     "names come from git, so the series are as few as the declared waves)"),
    ("current", "fota_rollout_wave_current", "Devices of the wave that run the target"),
    ("failed", "fota_rollout_wave_failed", "Devices of the wave in a terminal failure"),
    ("inFlight", "fota_rollout_wave_in_flight", "Devices of the wave updating now"),
)


def _waves(statuses: Iterable[CollectionStatus]) -> Iterator[GaugeMetricFamily]:
    """Per wave of each rollout that declares waves, from the controller's snapshot
    (`rollout.waves` in /status); `fota_rollout_wave_active` is 1 for the current one."""
    families = {key: GaugeMetricFamily(name, text, labels=["collection", "wave"])
                for key, name, text in _WAVE_FIGURES}
    active = GaugeMetricFamily("fota_rollout_wave_active", "1 for the wave the rollout is "
                               "in now", labels=["collection", "wave"])
    for status in statuses:
        shown = status.rollout.get("waves")
        if not isinstance(shown, Mapping):
            continue
        waves = shown.get("waves")
        for wave in waves if isinstance(waves, list) else ():
            if not isinstance(wave, Mapping):
                continue
            labels_of = [status.collection_id, _text(wave.get("name"))]
            for key, family in families.items():
                family.add_metric(labels_of, _number(wave.get(key)))
            active.add_metric(labels_of, 1.0 if wave.get("name") == shown.get("current")
                              else 0.0)
    yield from (*families.values(), active)


def _source(status: Mapping[str, object], applied: str | None) -> Iterator[Any]:
    info = InfoMetricFamily("fota_source", "The followed branch, the applied revision and "
                            "the newest one seen")
    info.add_metric([], {"branch": _text(status.get("branch")),
                         "applied_revision": applied or "",
                         "head_revision": _text(status.get("head_revision"))})
    yield info
    problems = status.get("errors")
    yield GaugeMetricFamily("fota_source_errors", "Problems of the head revision that keep "
                            "it from being applied (file:line in /status)",
                            value=len(problems) if isinstance(problems, list) else 0)
    synced = status.get("last_sync")
    if isinstance(synced, int | float):
        yield GaugeMetricFamily("fota_source_last_sync_timestamp_seconds",
                                "When the source was last read", value=float(synced))


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def metrics_router(reader: StoreReader, metrics: Metrics) -> APIRouter:
    metrics.registry.register(FleetCollector(reader))
    router = APIRouter(tags=["status"])

    @router.get("/metrics", summary="Prometheus metrics of this process and its fleet",
                response_class=Response, responses={
                    200: {"content": {"text/plain": {}}, "description": "Text format 0.0.4"},
                    **errors(401)})
    async def get_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    refuse_writes(router, "/metrics")
    return router
