"""Which devices a new revision affects: target, scope, policy or the device itself."""

from __future__ import annotations

from dataclasses import replace

from builders import NEW, OLD, collection, desired_state, device

from reconciler.model.desired import (
    Collection,
    DesiredState,
    Device,
    Management,
    RolloutPolicy,
    revision_affects,
)


def _state(coll: Collection, dev: Device) -> DesiredState:
    return desired_state(coll, devices=[dev])


COLL = collection(OLD.image_id)
DEV = device(target=NEW.image_id)


def test_an_unrelated_revision_affects_no_device() -> None:
    assert not revision_affects(_state(COLL, DEV), _state(replace(COLL, name="renamed"), DEV), "d1")


def test_a_new_collection_target_or_scope_affects_the_device() -> None:
    old = _state(COLL, DEV)
    assert revision_affects(old, _state(replace(COLL, target_image_id=NEW.image_id), DEV), "d1")
    assert revision_affects(old, _state(replace(COLL, management=Management.DISABLED), DEV), "d1")


def test_a_device_target_matters_only_in_device_scope_but_the_devicerevision_affects() -> None:
    old = _state(COLL, DEV)
    # The device's own record changed, so it is looked at even though its effective
    # target (the collection's) did not move.
    assert revision_affects(old, _state(COLL, replace(DEV, target_image_id=OLD.image_id)), "d1")


def test_a_rollout_policy_change_affects_the_collections_devices() -> None:
    paused = replace(COLL, rollout=RolloutPolicy(paused=True))
    assert revision_affects(_state(COLL, DEV), _state(paused, DEV), "d1")


def test_a_device_new_to_the_desired_state_is_affected() -> None:
    empty = desired_state(COLL)
    assert revision_affects(empty, _state(COLL, DEV), "d1")
