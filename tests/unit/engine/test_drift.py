"""Drift with each policy: a device whose record for its target was Current reports
another version with no update in flight. `correct` updates it again, `report` only
says so; a device that never reached its present target is not drifted."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from builders import NEW, T0, collection, desired_state, device, registration, report
from builders.engine import delta

from reconciler.engine import Decision, NoOp, WriteUri, decide, device_conditions
from reconciler.model.desired import DesiredState, DriftPolicy
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import ConditionType
from reconciler.model.status import UpdateState as S
from reconciler.store import open_store

NOW = T0 + 100
WHAT = "runs 1.5, should run 2.0"


def fleet(policy: DriftPolicy) -> DesiredState:
    return desired_state(replace(collection(), drift_policy=policy), devices=[device()])


def current() -> DeviceProgress:
    return DeviceProgress("d1", NEW.image_id, S.CURRENT, "running 2.0", attempts=1,
                          retries_left=3, updated_at=T0)


def flashed(policy: DriftPolicy, record: DeviceProgress, version: str = "1.5") -> Decision:
    """decide() once the device reports `version` after a reboot."""
    return decide(delta(fleet(policy), report(version, at=NOW - 1), registration(NOW - 2)),
                  record, NOW)


def test_correct_updates_a_drifted_device_again_and_says_why() -> None:
    result = flashed(DriftPolicy.CORRECT, current())
    assert result.progress is not None and result.progress.drift == WHAT
    assert isinstance(result.actions[0], WriteUri)
    assert result.progress.state is S.INITIALIZING
    assert result.events[0].message == f"Current -> Pending: drifted: {WHAT}; updating it again"
    # it stays Drifted through the update, until it runs its target again
    back = decide(delta(fleet(DriftPolicy.CORRECT), report("2.0", at=NOW + 50),
                        registration(NOW + 40)), result.progress, NOW + 60)
    assert back.progress is not None
    assert (back.progress.state, back.progress.drift) == (S.CURRENT, None)


def test_report_only_says_so_and_never_touches_the_device() -> None:
    result = flashed(DriftPolicy.REPORT, current())
    assert result.progress is not None
    assert (result.progress.state, result.progress.drift) == (S.PENDING, WHAT)
    assert result.progress.message == f"drifted: {WHAT}; driftPolicy report: not corrected"
    assert result.actions == (NoOp("drifted: driftPolicy report: not corrected"),)
    again = flashed(DriftPolicy.REPORT, result.progress)
    assert again.progress is result.progress and not again.events  # nothing to write
    other = flashed(DriftPolicy.REPORT, result.progress, "1.6")
    assert other.progress is not None and other.progress.drift == "runs 1.6, should run 2.0"
    assert other.actions == result.actions
    # the device comes back to its target by itself: Current, no longer drifted
    back = decide(delta(fleet(DriftPolicy.REPORT), report("2.0", at=NOW + 50),
                        registration(NOW + 40)), other.progress, NOW + 60)
    assert back.progress is not None
    assert (back.progress.state, back.progress.drift) == (S.CURRENT, None)


def test_a_policy_changed_to_correct_updates_a_reported_device() -> None:
    reported = flashed(DriftPolicy.REPORT, current()).progress
    assert reported is not None
    corrected = flashed(DriftPolicy.CORRECT, reported)
    assert isinstance(corrected.actions[0], WriteUri)
    assert corrected.progress is not None and corrected.progress.drift == WHAT


def test_a_device_that_never_reached_its_target_is_not_drifted() -> None:
    for state in (S.PENDING, S.TIMED_OUT):
        never = DeviceProgress("d1", NEW.image_id, state, "update to 2.0 pending",
                               updated_at=T0)
        for policy in DriftPolicy:
            result = flashed(policy, never)
            assert result.progress is not None and result.progress.drift is None
            assert isinstance(result.actions[0], WriteUri)


def test_the_drifted_condition_is_there_only_while_drifted() -> None:
    drifted = flashed(DriftPolicy.REPORT, current()).progress
    assert drifted is not None
    [condition] = [c for c in device_conditions(drifted, "rev1", NOW)
                   if c.type is ConditionType.DRIFTED]
    assert (condition.status, condition.reason, condition.message) == (True, "Drifted", WHAT)
    types = {c.type for c in device_conditions(current(), "rev1", NOW)}
    assert ConditionType.DRIFTED not in types


def test_the_drift_survives_the_state_file(tmp_path: Path) -> None:
    drifted = flashed(DriftPolicy.REPORT, current()).progress
    assert drifted is not None
    store = open_store(tmp_path / "state.db")
    try:
        store.put_progress(drifted)
        assert store.progress("d1") == drifted
    finally:
        store.close()
