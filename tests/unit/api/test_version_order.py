"""Firmware versions sort naturally, the same way in the model and for the API."""

from __future__ import annotations

import random

from builders import CID, desired_state, image

from reconciler.model.desired import Collection
from reconciler.model.versions import image_order, version_key

NATURAL = ["1.0.0", "1.1.0", "1.2.0", "1.9.0", "1.10.0", "4.0.0"]


def test_numeric_runs_compare_as_numbers_so_1_10_comes_after_1_9() -> None:
    shuffled = random.Random(7).sample(NATURAL, len(NATURAL))
    assert sorted(shuffled, key=version_key) == NATURAL
    assert sorted(NATURAL) != NATURAL  # what plain string order got wrong


def test_text_runs_compare_as_text_and_numbers_never_meet_text() -> None:
    versions = ["v2", "1.0-rc2", "1.0-rc10", "1.0", "1.0.0", "10", "9.x", "", "1.0a"]
    assert sorted(versions, key=version_key) == [
        "", "1.0", "1.0-rc2", "1.0-rc10", "1.0.0", "1.0a", "9.x", "10", "v2"]


def test_versions_equal_as_numbers_still_have_one_fixed_order() -> None:
    assert sorted(["1.1", "1.01", "01.1"], key=version_key) == ["01.1", "1.01", "1.1"]
    assert version_key("1.01") != version_key("1.1")


def test_a_run_of_thousands_of_digits_is_ordered_without_overflowing_int() -> None:
    huge = "1." + "9" * 5000
    assert sorted([huge, "1.10"], key=version_key) == ["1.10", huge]


def test_images_of_lists_in_natural_version_order_with_the_image_id_breaking_ties() -> None:
    images = [image("nnnn", "1.10.0"), image("mmmm", "1.9.0"), image("dddd", "1.2.0"),
              image("bbbb", "1.2.0"), image("aaaa", "4.0.0"), image("kkkk", "1.0", "other")]
    listed = desired_state(Collection(CID), images).images_of(CID)
    assert [(i.version, i.image_id) for i in listed] == [
        ("1.2.0", "bbbb"), ("1.2.0", "dddd"), ("1.9.0", "mmmm"), ("1.10.0", "nnnn"),
        ("4.0.0", "aaaa")]
    assert listed == sorted(images[:5], key=image_order)
