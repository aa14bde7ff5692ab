"""The per-wave rollout gauges of /metrics, from the controller's `rollout.waves` snapshot:
one series per declared wave (never per device), the active wave marked, and nothing for
a rollout without waves."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from reconciler.api.metrics import FleetCollector
from reconciler.model.desired import Management
from reconciler.store import CollectionStatus

WAVES = {"current": "early", "index": 1, "stage": "running", "gate": "open",
         "waves": [{"name": "canary", "members": 5, "current": 5, "failed": 0, "inFlight": 0},
                   {"name": "early", "members": 40, "current": 12, "failed": 1, "inFlight": 3},
                   {"name": "the rest", "members": 955, "current": 0, "failed": 0,
                    "inFlight": 0}]}


def _status(collection: str, rollout: dict[str, object]) -> CollectionStatus:
    return CollectionStatus(collection, Management.COLLECTION, "img", 1000,
                            {"Current": 17, "Pending": 983}, rollout)


class _Reader:
    def collection_statuses(self) -> list[CollectionStatus]:
        return [_status("staged", {"waves": WAVES}), _status("plain", {})]

    def source_status(self) -> dict[str, object]:
        return {}

    def applied_revision(self) -> str | None:
        return None


def _scrape(collector: Collector) -> dict[tuple[str, str, str], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {(s.name, s.labels.get("collection", ""), s.labels.get("wave", "")): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name.startswith("fota_rollout_wave_")}


def test_each_declared_wave_has_its_series_and_the_active_one_is_marked() -> None:
    found = _scrape(FleetCollector(_Reader()))  # type: ignore[arg-type]
    assert found[("fota_rollout_wave_devices", "staged", "the rest")] == 955
    assert found[("fota_rollout_wave_current", "staged", "early")] == 12
    assert found[("fota_rollout_wave_failed", "staged", "early")] == 1
    assert found[("fota_rollout_wave_in_flight", "staged", "early")] == 3
    active = {w for (name, _, w), v in found.items()
              if name == "fota_rollout_wave_active" and v == 1}
    assert active == {"early"}
    assert {c for (_, c, _) in found} == {"staged"}  # a rollout without waves has none
    assert len(found) == 5 * 3
