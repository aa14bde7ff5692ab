"""The demo's choice of the image to roll to next."""

from __future__ import annotations

from reconciler.demo import newest_other


def _image(version: str, created: int) -> dict[str, object]:
    return {"version": version, "created": created}


def test_the_demo_rolls_to_the_most_recently_created_other_image() -> None:
    images = [_image("1.9.0", 1_000), _image("1.10.0", 2_000), _image("1.2.0", 500)]
    assert newest_other(images, "1.2.0") == "1.10.0"
    assert newest_other(images, "1.10.0") == "1.9.0"


def test_images_created_at_the_same_time_are_ordered_by_natural_version() -> None:
    images = [_image("1.9.0", 7), _image("1.10.0", 7), _image("1.8.0", 7)]
    assert newest_other(images, "1.8.0") == "1.10.0"


def test_without_another_image_the_demo_keeps_the_current_one() -> None:
    assert newest_other([_image("1.0.0", 1)], "1.0.0") == "1.0.0"
