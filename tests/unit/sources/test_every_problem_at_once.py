"""Every problem of one file comes out of one run: schema errors of every field and
entry, duplicate keys and unknown keys together, never one layer after another."""

from __future__ import annotations

import pytest
from builders.manifests import COLLECTION, Tree

from reconciler.cli import main
from reconciler.sources.devicelist import parse_devices
from reconciler.sources.parsing import parse_collection, parse_images

COLL = "manifests/fleet/collection.yaml"
DEVS = "manifests/fleet/devices/a.yaml"


def test_an_unknown_key_beside_the_device_list_does_not_hide_its_entries() -> None:
    assert parse_devices("x: 1\ndevices: [1]").problems == [
        (1, "x", "unknown key"),
        (2, "devices[0]", "expected a mapping, got an integer"),
    ]


def test_a_duplicate_key_in_a_device_file_does_not_hide_its_entries() -> None:
    text = 'devices:\n- {"endpoint": 1}\n- {"endpoint": "a", "traget": "1"}\ndevices: []\n'
    assert parse_devices(text).problems == [
        (2, "devices[0].endpoint", 'expected a string, got the number 1; quote it ("1")'),
        (3, "devices[1].traget", "unknown key"),
        (4, "devices", "duplicate key"),
    ]


def test_a_duplicate_key_in_a_collection_does_not_hide_its_schema_errors() -> None:
    text = "name: Fleet\ncolour: 1\nname: Other\nrollout:\n  maxConcurrent: 0\n"
    assert parse_collection(text).problems == [
        (2, "colour", "unknown key"),
        (3, "name", "duplicate key"),
        (5, "rollout.maxConcurrent", "must be at least 1, got 0"),
    ]


def test_an_unknown_key_beside_the_image_list_does_not_hide_its_entries() -> None:
    text = "imgaes: []\nimages:\n- version: 1\nimages: []\n"
    assert parse_images(text).problems == [
        (1, "imgaes", "unknown key"),
        (3, "images[0].version", 'expected a string, got the number 1; quote it ("1")'),
        (3, "images[0].path", "required key is missing"),
        (3, "images[0].sha256", "required key is missing"),
        (3, "images[0].length", "required key is missing"),
        (3, "images[0].created", "required key is missing"),
        (4, "images", "duplicate key"),
    ]


def test_fota_validate_reports_both_files_problems_in_one_run(
    tree: Tree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.write(COLL, COLLECTION + "colour: 1\nname: Again\n")
    tree.write(DEVS, "x: 1\ndevices: [1]\n")
    assert main(["validate", str(tree.root)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{COLL}:6: colour: unknown key",
        f"{COLL}:7: name: duplicate key",
        f"{DEVS}:1: x: unknown key",
        f"{DEVS}:2: devices[0]: expected a mapping, got an integer",
    ]


def test_schema_errors_do_not_hide_the_cross_file_problems_of_the_same_files(
    tree: Tree, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two schema errors and a dangling target in the collection, a key typo beside a
    # dangling target and a duplicate endpoint in the devices: one run names all six.
    tree.write(COLL, """\
        collectionId: 1000aaaa
        firmware:
          managment: collection
          target: "9.9.9"
        rollout:
          maxConcurrent: 0
        """)
    tree.write(DEVS, """\
        devices:
        - {"deviceId": "2000aaaa", "endpoint": "urn:imei:1", "target": "7.7", "tagz": {}}
        - {"deviceId": "2000aaab", "endpoint": "urn:imei:1"}
        """)
    assert main(["validate", str(tree.root)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{COLL}:3: firmware.managment: unknown key",
        f"{COLL}:4: firmware.target: no image of collection 1000aaaa has version or id '9.9.9'",
        f"{COLL}:6: rollout.maxConcurrent: must be at least 1, got 0",
        f"{DEVS}:2: devices[0].tagz: unknown key",
        f"{DEVS}:2: devices[0].target: no image of collection 1000aaaa has version or id '7.7'",
        f"{DEVS}:3: devices[1].endpoint: endpoint 'urn:imei:1' is already declared at "
        f"{DEVS}:2 (collection 1000aaaa)",
    ]


def test_an_unquoted_version_is_quoted_in_the_hint_as_written() -> None:
    sha = "0" * 64
    text = f'images:\n- {{version: 2.30, path: a, sha256: "{sha}", length: 1, created: 1}}\n'
    assert parse_images(text).problems == [
        (2, "images[0].version", 'expected a string, got the number 2.30; quote it ("2.30")'),
    ]
    assert parse_devices('devices:\n- {"endpoint": "a", "target": 1.10}\n').problems == [
        (2, "devices[0].target", 'expected a string, got the number 1.10; quote it ("1.10")'),
    ]
