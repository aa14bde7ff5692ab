"""`fota plan` for issue 10's windows and drift: when each window opens next (from an
injected now), and drifted devices listed apart from the moves, with each policy."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from builders import CID, NEW, collection, desired_state, device

from reconciler.model.desired import (
    DesiredState,
    DriftPolicy,
    MaintenanceWindow,
    RolloutPolicy,
    WindowGate,
)
from reconciler.review.observed import _view as api_view
from reconciler.review.summary import render, summarize
from reconciler.store import DeviceView

NIGHT = MaintenanceWindow("night", "0 2 * * *", 7200.0, "Europe/Oslo", WindowGate.EXECUTE,
                          {"site": "oslo"})
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC).timestamp()
DRIFT = "runs 1.0, should run 2.0"


def _desired(policy: DriftPolicy = DriftPolicy.CORRECT) -> DesiredState:
    coll = replace(collection(rollout=RolloutPolicy(windows=(NIGHT,))), drift_policy=policy)
    return desired_state(coll, devices=[device("d0"), device("d1")])


def _view(device_id: str, version: str, drift: str | None = None) -> DeviceView:
    return DeviceView(device_id, CID, {}, None, NEW.image_id, version, None, None, None,
                      "Pending" if drift else "Current", None, drift)


OBSERVED = {"d0": _view("d0", "1.0", DRIFT), "d1": _view("d1", "2.0")}


def test_the_plan_tells_when_each_window_opens_next() -> None:
    [plan] = summarize(_desired(), OBSERVED, NOW)
    assert plan.windows == ["night (execute, site=oslo): 02:00-04:00 Europe/Oslo, "
                            "opens at 2026-12-01T01:00:00Z"]
    inside = datetime(2026, 12, 1, 2, tzinfo=UTC).timestamp()
    [open_now] = summarize(_desired(), OBSERVED, inside)
    assert open_now.windows == ["night (execute, site=oslo): open now, closes at "
                                "2026-12-01T03:00:00Z"]
    assert "  window night (execute, site=oslo): open now" in render([open_now])


def test_drift_is_listed_apart_and_moves_only_when_corrected() -> None:
    [corrected] = summarize(_desired(DriftPolicy.CORRECT), OBSERVED, NOW)
    assert dict(corrected.drifted) == {DRIFT: 1}
    assert dict(corrected.moves) == {("1.0", "2.0"): 1}
    assert f"  1 drifted (driftPolicy correct): {DRIFT}" in render([corrected]).splitlines()
    [reported] = summarize(_desired(DriftPolicy.REPORT), OBSERVED, NOW)
    assert dict(reported.drifted) == {DRIFT: 1} and not reported.moves
    assert dict(reported.blocked) == {"drifted; driftPolicy report: not corrected": 1}


def test_the_api_view_reads_drift_from_the_state_message() -> None:
    item = {"deviceId": "d0", "firmware": {
        "state": "Pending",
        "stateMessage": f"drifted: {DRIFT}; driftPolicy report: not corrected"}}
    assert api_view(CID, item).drift == DRIFT
    item["firmware"]["stateMessage"] = "update to 2.0 pending"  # type: ignore[index]
    assert api_view(CID, item).drift is None
