"""diff(): the target by management scope and the current image by reported version."""

from __future__ import annotations

from builders import NEW, OLD, one_device, registration, report
from builders.engine import delta

from reconciler.engine import diff
from reconciler.model.desired import Management


def test_collection_scope_targets_the_collections_image() -> None:
    d = delta(one_device(Management.COLLECTION, NEW.image_id, OLD.image_id), report())
    assert d.target == NEW and d.managed


def test_device_scope_targets_the_devices_own_image() -> None:
    d = delta(one_device(Management.DEVICE, NEW.image_id, OLD.image_id), report())
    assert d.target == OLD


def test_disabled_scope_has_no_target_and_is_not_managed() -> None:
    d = delta(one_device(Management.DISABLED), report())
    assert d.target is None and not d.managed


def test_current_image_is_the_one_whose_version_equals_the_trimmed_report() -> None:
    assert delta(rep=report(" 1.0\n")).current == OLD
    assert delta(rep=report("1.0-dirty")).current is None


def test_a_device_missing_from_the_desired_state_is_not_managed() -> None:
    missing = diff(one_device(), "nope", report(), registration())
    assert not missing.managed and missing.target is None


def test_report_is_fresh_only_when_read_after_the_latest_register() -> None:
    assert delta(rep=report(at=10.0), reg=registration(at=10.0)).report_fresh
    assert not delta(rep=report(at=9.0), reg=registration(at=10.0)).report_fresh
    assert not delta(rep=None, reg=registration()).report_fresh
