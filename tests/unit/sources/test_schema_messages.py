"""Schema errors read as a reviewer would want them: field path, line, plain words."""

from __future__ import annotations

import pytest

from reconciler.sources.devicelist import parse_devices
from reconciler.sources.parsing import parse_collection, parse_images


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("firmware: 5", (1, "firmware", "expected a mapping, got an integer")),
        ("tags: [a]", (1, "tags", "expected a mapping, got a list")),
        ("name: Fleet\nrollout:\n  maxConcurrent: 0",
         (3, "rollout.maxConcurrent", "must be at least 1, got 0")),
        ("collectionId: 12",
         (1, "collectionId", 'expected a string, got the number 12; quote it ("12")')),
        ("firmware:\n  paused: true", (2, "firmware.paused", "unknown key")),
    ],
)
def test_collection_schema_messages(text: str, problem: tuple[int, str, str]) -> None:
    assert parse_collection(text).problems == [problem]


def test_image_entries_report_every_field_on_its_own_line() -> None:
    text = "images:\n- version: '1'\n  path: a.bin\n  sha256: ab\n  length: -1\n  created: 1.5\n"
    assert parse_images(text).problems == [
        (4, "images[0].sha256", "must be 64 lowercase hex digits"),
        (5, "images[0].length", "must be at least 0, got -1"),
        (6, "images[0].created", "expected an integer, got a number"),
    ]


def test_a_device_list_that_is_not_a_list_is_reported() -> None:
    assert parse_devices("devices:\n  a: b\n").problems == [
        (2, "devices", "expected a list, got a mapping"),
    ]


def test_a_device_entry_that_is_not_a_mapping_is_reported() -> None:
    assert parse_devices("devices:\n- urn:imei:1\n").problems == [
        (2, "devices[0]", "expected a mapping, got a string"),
    ]
