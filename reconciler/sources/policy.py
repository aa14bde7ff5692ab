"""A parsed `collection.yaml` -> `Collection`: management, resolved target, rollout guards.

The target may be written as a version (what a reviewer reads) or an image id of the
same collection; it resolves to the image id. `failureThreshold` is a count of failed
devices (`3`) or a share of the rollout's population (`"10%"`: failed devices among those
the rollout has to update, all but the ones found already on the target). Called by
`reconciler.sources.assemble`. Without a `rollout:` section a collection gets
`SAFE_ROLLOUT` (maxConcurrent 10, failureThreshold 10%). `waves` and `retry` are
documented in docs/manifests.md; membership and gates are the engine's (`engine.waves`).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from reconciler.model.desired import (
    Collection,
    DriftPolicy,
    FailureThreshold,
    MaintenanceWindow,
    Management,
    RolloutPolicy,
    SecurityMode,
    Wave,
    WindowGate,
)
from reconciler.sources.devices import Targets
from reconciler.sources.durations import parse_duration
from reconciler.sources.parsing import ParsedDoc
from reconciler.sources.problems import Problem
from reconciler.sources.snapshot import FileEntry


def collection_from(
    doc: ParsedDoc, entry: FileEntry | None, targets: Targets
) -> tuple[Collection, list[Problem]]:
    value: dict[str, Any] = doc.value or {}
    firmware = value.get("firmware") or {}
    problems: list[Problem] = []
    target = firmware.get("target")
    target_id = targets.resolve(target) if target is not None else None
    reported = target in targets.broken  # the image's own entry already has the error
    if target is not None and target_id is None and entry is not None and not reported:
        line = doc.line_of("firmware.target")
        problems.append(Problem(entry.path, line, "firmware.target", targets.problem(target)))
    collection = Collection(
        collection_id=targets.collection_id,
        name=value.get("name", ""),
        management=Management(firmware.get("management", "disabled")),
        target_image_id=target_id,
        tags=MappingProxyType(value.get("tags") or {}),
        rollout=SAFE_ROLLOUT if value.get("rollout") is None else rollout_from(value["rollout"]),
        drift_policy=DriftPolicy(firmware.get("driftPolicy", "correct")),
        security=SecurityMode(value["security"]) if value.get("security") else None,
    )
    return collection, problems


# A collection without a `rollout:` section is not left unguarded: at most 10 devices
# update at once and new starts halt once 10% of the rollout failed, as a fleet team
# expects of a bad image. `rollout: {}` (or any rollout section) states the guards itself.
SAFE_ROLLOUT = RolloutPolicy(max_concurrent=10, failure_threshold=FailureThreshold(percent=10.0))


def rollout_from(value: dict[str, Any]) -> RolloutPolicy:
    return RolloutPolicy(
        max_concurrent=value.get("maxConcurrent"),
        failure_threshold=threshold_from(value.get("failureThreshold")),
        paused=bool(value.get("paused", False)),
        windows=tuple(window_from(w) for w in value.get("windows") or ()),
        retry=int(value.get("retry", 0)),
        waves=tuple(wave_from(wave) for wave in value.get("waves") or ()),
    )


def window_from(value: dict[str, Any]) -> MaintenanceWindow:
    return MaintenanceWindow(
        name=value["name"], cron=value["cron"], duration=parse_duration(value["duration"]),
        time_zone=value["timeZone"], gates=WindowGate(value.get("gates", "execute")),
        tags=MappingProxyType(dict(value.get("tags") or {})),
    )


def wave_from(value: dict[str, Any]) -> Wave:
    """A `waves:` entry the schema accepted -> `Wave` (percentages as numbers, seconds)."""
    return Wave(
        name=value["name"],
        tags=tuple(sorted((value.get("tags") or {}).items())),
        share=_percent(value.get("share")),
        soak=parse_duration(value.get("soak", "0s")),
        min_success=_percent(value.get("minSuccess")),
        failure_threshold=threshold_from(value.get("failureThreshold")),
    )


def _percent(value: str | None) -> float | None:
    return None if value is None else float(value.strip().rstrip("%"))


def threshold_from(value: int | str | None) -> FailureThreshold | None:
    if value is None:
        return None
    if isinstance(value, str):
        return FailureThreshold(percent=float(value.strip().rstrip("%")))
    return FailureThreshold(count=value)
