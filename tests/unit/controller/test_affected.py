"""Which devices a new revision affects: target, scope, policy or the device itself."""

from __future__ import annotations

from dataclasses import replace

from reconciler.controller.decide import _changed
from reconciler.model.desired import (
    Collection,
    DesiredState,
    Device,
    FirmwareImage,
    Management,
    RolloutPolicy,
)

IMG = {i: FirmwareImage(i, "cc", v, "f", "0" * 64, 1, 1, "images/f")
       for i, v in (("aaaa", "1.0"), ("bbbb", "2.0"))}


def _state(coll: Collection, dev: Device) -> DesiredState:
    return DesiredState("rev", {"cc": coll}, IMG, {dev.device_id: dev})


COLL = Collection("cc", "c", Management.COLLECTION, "aaaa")
DEV = Device("d1", "cc", "ep1", "bbbb")


def test_an_unrelated_revision_affects_no_device() -> None:
    assert not _changed(_state(COLL, DEV), _state(replace(COLL, name="renamed"), DEV), "d1")


def test_a_new_collection_target_or_scope_affects_the_device() -> None:
    old = _state(COLL, DEV)
    assert _changed(old, _state(replace(COLL, target_image_id="bbbb"), DEV), "d1")
    assert _changed(old, _state(replace(COLL, management=Management.DISABLED), DEV), "d1")


def test_a_device_target_matters_only_in_device_scope_but_the_device_changed() -> None:
    old = _state(COLL, DEV)
    # The device's own record changed, so it is looked at even though its effective
    # target (the collection's) did not move.
    assert _changed(old, _state(COLL, replace(DEV, target_image_id="aaaa")), "d1")


def test_a_rollout_policy_change_affects_the_collections_devices() -> None:
    paused = replace(COLL, rollout=RolloutPolicy(paused=True))
    assert _changed(_state(COLL, DEV), _state(paused, DEV), "d1")


def test_a_device_new_to_the_desired_state_is_affected() -> None:
    empty = DesiredState("rev", {"cc": COLL}, IMG, {})
    assert _changed(empty, _state(COLL, DEV), "d1")
