"""One broken manifest per rule: `validate_tree` names the exact file, line and field."""

from __future__ import annotations

import os
from pathlib import Path

from builders.manifests import COLLECTION, DEVICES, ONE, Tree, images_yaml

from reconciler.sources import validate_tree
from reconciler.sources.tree import load_tree

IMAGES = "manifests/fleet/images.yaml"
DEVICES_FILE = "manifests/fleet/devices/a.yaml"
COLL = "manifests/fleet/collection.yaml"


def problems(tree: Tree) -> list[str]:
    return [str(p) for p in validate_tree(tree.root)]


def test_the_valid_tree_has_no_problems_and_loads(tree: Tree) -> None:
    assert problems(tree) == []
    state = load_tree(tree.root)
    assert state.collections["1000aaaa"].target_image_id == "3000aaaa"
    assert state.devices["2000aaaa"].target_image_id == "3000aaab"
    assert state.devices["2000aaab"].target_image_id is None


def test_an_unknown_key_in_a_collection_is_an_error(tree: Tree) -> None:
    tree.write(COLL, COLLECTION + "owner: fleet-team\n")
    assert problems(tree) == [f"{COLL}:6: owner: unknown key"]


def test_an_unknown_key_in_a_device_line_is_an_error(tree: Tree) -> None:
    tree.write(DEVICES_FILE, DEVICES + '- {"endpoint": "urn:imei:3", "traget": "1.0.0"}\n')
    assert problems(tree) == [f"{DEVICES_FILE}:4: devices[2].traget: unknown key"]


def test_a_missing_required_key_is_an_error(tree: Tree) -> None:
    tree.write(IMAGES, images_yaml().replace("    length: 3904\n", "", 1))
    assert problems(tree) == [f"{IMAGES}:2: images[0].length: required key is missing"]


def test_a_version_used_twice_in_a_collection_is_an_error(tree: Tree) -> None:
    tree.write(DEVICES_FILE, DEVICES.replace('"target": "1.1.0", ', ""))
    tree.write(IMAGES, images_yaml().replace('"1.1.0"', '"1.0.0"'))
    assert problems(tree) == [
        f"{IMAGES}:9: images[1].version: version '1.0.0' is already used by images[0] "
        "of this collection",
    ]


def test_the_same_sha256_twice_in_a_collection_is_an_error(tree: Tree) -> None:
    tree.write(IMAGES, images_yaml(ONE, ONE).replace("zephyr-1.1.0", "zephyr-1.0.0"))
    sha = images_yaml().split("sha256: ")[1].split("\n")[0]
    assert problems(tree) == [
        f"{IMAGES}:11: images[1].sha256: sha256 '{sha}' is already used by images[0] "
        "of this collection",
    ]


def test_a_sha256_that_does_not_match_the_binary_is_an_error(tree: Tree) -> None:
    tree.binary("images/fleet/zephyr-1.0.0.signed.bin", ONE[:-1] + b"!")
    actual = __import__("hashlib").sha256(ONE[:-1] + b"!").hexdigest()
    assert problems(tree) == [
        f"{IMAGES}:5: images[0].sha256: does not match images/fleet/zephyr-1.0.0.signed.bin, "
        f"whose sha256 is {actual}",
    ]


def test_a_length_that_does_not_match_the_binary_is_an_error(tree: Tree) -> None:
    tree.write(IMAGES, images_yaml().replace("length: 3904", "length: 3905"))
    assert problems(tree) == [
        f"{IMAGES}:6: images[0].length: declared 3905 bytes but "
        "images/fleet/zephyr-1.0.0.signed.bin has 3904",
    ]


def test_a_path_that_climbs_out_with_dot_dot_is_an_error(tree: Tree) -> None:
    tree.write(IMAGES, images_yaml().replace("path: images/fleet/", "path: ../", 1))
    assert problems(tree) == [f"{IMAGES}:4: images[0].path: must not contain '..'"]


def test_an_absolute_path_is_an_error(tree: Tree) -> None:
    tree.write(IMAGES, images_yaml().replace("path: images/fleet/", "path: /etc/", 1))
    assert problems(tree) == [
        f"{IMAGES}:4: images[0].path: must be a path relative to the repository root, "
        "like images/fw.bin",
    ]


def test_a_symlink_that_leaves_the_repository_is_an_error(tree: Tree, tmp_path: Path) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(ONE)
    link = tree.root / "images/fleet/zephyr-1.0.0.signed.bin"
    link.unlink()
    os.symlink(outside, link)
    assert problems(tree) == [
        f"{IMAGES}:4: images[0].path: images/fleet/zephyr-1.0.0.signed.bin leaves the "
        f"repository (resolves to {outside.resolve()})",
    ]


def test_a_symlink_that_stays_inside_the_repository_is_followed(tree: Tree) -> None:
    link = tree.root / "images/fleet/zephyr-1.0.0.signed.bin"
    link.rename(tree.root / "images/real.bin")
    os.symlink("../real.bin", link)
    assert problems(tree) == []


def test_a_missing_binary_is_an_error(tree: Tree) -> None:
    (tree.root / "images/fleet/zephyr-1.1.0.signed.bin").unlink()
    assert problems(tree) == [
        f"{IMAGES}:10: images[1].path: images/fleet/zephyr-1.1.0.signed.bin does not exist",
    ]


def test_a_collection_target_naming_no_image_is_an_error(tree: Tree) -> None:
    tree.write(COLL, COLLECTION.replace('"1.0.0"', '"2.0.0"'))
    assert problems(tree) == [
        f"{COLL}:5: firmware.target: no image of collection 1000aaaa has version or id '2.0.0'",
    ]


def test_a_target_may_be_an_image_id_of_the_collection(tree: Tree) -> None:
    tree.write(COLL, COLLECTION.replace('"1.0.0"', "3000aaab"))
    assert load_tree(tree.root).collections["1000aaaa"].target_image_id == "3000aaab"


def test_a_device_target_naming_no_image_is_an_error(tree: Tree) -> None:
    tree.write(DEVICES_FILE, DEVICES.replace('"1.1.0"', '"1.9.0"'))
    assert problems(tree) == [
        f"{DEVICES_FILE}:2: devices[0].target: no image of collection 1000aaaa has version "
        "or id '1.9.0'",
    ]


def test_a_device_target_naming_another_collections_image_is_an_error(tree: Tree) -> None:
    tree.write("manifests/other/collection.yaml", "collectionId: 1000aaab\n")
    tree.write(DEVICES_FILE, DEVICES.replace('"1.1.0"', '"3000aaab"'))
    tree.write("manifests/other/devices/b.yaml", '''\
        devices:
        - {"endpoint": "urn:imei:352656100000009", "target": "3000aaab"}
        ''')
    assert problems(tree) == [
        "manifests/other/devices/b.yaml:2: devices[0].target: image 3000aaab belongs to "
        "collection 1000aaaa, not 1000aaab",
    ]


def test_a_malformed_id_is_an_error(tree: Tree) -> None:
    tree.write(DEVICES_FILE, DEVICES.replace('"2000aaab"', '"2000-AAAB"'))
    assert problems(tree) == [
        f"{DEVICES_FILE}:3: devices[1].deviceId: malformed id '2000-AAAB': use 4 to 16 "
        "base-24 digits (0-9, a-n)",
    ]


def test_a_device_id_used_twice_is_an_error_pointing_at_the_first(tree: Tree) -> None:
    tree.write("manifests/fleet/devices/b.yaml", '''\
        devices:
        - {"deviceId": "2000aaaa", "endpoint": "urn:imei:352656100000003"}
        ''')
    assert problems(tree) == [
        "manifests/fleet/devices/b.yaml:2: devices[0].deviceId: duplicate device id "
        f"2000aaaa, first declared at {DEVICES_FILE}:2",
    ]


def test_an_endpoint_in_two_collections_is_an_error(tree: Tree) -> None:
    tree.write("manifests/other/collection.yaml", "collectionId: 1000aaab\n")
    tree.write("manifests/other/devices/b.yaml", '''\
        devices:
        - {"endpoint": "urn:imei:352656100000002"}
        ''')
    assert problems(tree) == [
        "manifests/other/devices/b.yaml:2: devices[0].endpoint: endpoint "
        f"'urn:imei:352656100000002' is already declared at {DEVICES_FILE}:3 "
        "(collection 1000aaaa)",
    ]


def test_management_outside_the_three_scopes_is_an_error(tree: Tree) -> None:
    tree.write(COLL, COLLECTION.replace("management: collection", "management: fleet"))
    assert problems(tree) == [
        f"{COLL}:4: firmware.management: must be one of 'device', 'collection' or "
        "'disabled', got 'fleet'",
    ]


def test_management_defaults_to_disabled(tree: Tree) -> None:
    tree.write(COLL, "collectionId: 1000aaaa\n")
    assert load_tree(tree.root).collections["1000aaaa"].management == "disabled"


def test_a_failure_threshold_must_be_a_count_or_a_percentage(tree: Tree) -> None:
    tree.write(COLL, COLLECTION + 'rollout:\n  failureThreshold: "ten"\n')
    assert problems(tree) == [
        f'{COLL}:7: rollout.failureThreshold: write a count of at least 1 like 5, or a '
        'percentage like "10%"',
    ]


def test_rollout_guards_reach_the_collection(tree: Tree) -> None:
    rollout = 'rollout:\n  maxConcurrent: 5\n  failureThreshold: "10%"\n  paused: true\n'
    tree.write(COLL, COLLECTION + rollout)
    policy = load_tree(tree.root).collections["1000aaaa"].rollout
    assert (policy.max_concurrent, policy.paused) == (5, True)
    assert policy.failure_threshold is not None and policy.failure_threshold.percent == 10.0


def test_an_unquoted_version_gets_a_hint_to_quote_it(tree: Tree) -> None:
    tree.write(IMAGES, images_yaml().replace('"1.1.0"', "1.1"))
    tree.write(DEVICES_FILE, DEVICES.replace('"1.1.0"', '"1.1"'))
    assert problems(tree) == [
        f'{IMAGES}:9: images[1].version: expected a string, got the number 1.1; quote it ("1.1")',
    ]


def test_a_duplicate_key_is_an_error(tree: Tree) -> None:
    tree.write(COLL, COLLECTION + "name: Again\n")
    assert problems(tree) == [f"{COLL}:6: name: duplicate key"]


def test_broken_yaml_names_the_line(tree: Tree) -> None:
    tree.write(COLL, "collectionId: 1000aaaa\nfirmware: [unclosed\n")
    found = problems(tree)
    assert len(found) == 1 and found[0].startswith(f"{COLL}:3: invalid YAML:")


def test_a_file_that_fits_no_manifest_kind_is_an_error(tree: Tree) -> None:
    tree.write("manifests/fleet/devcies.yaml", "devices: []\n")
    assert problems(tree) == [
        "manifests/fleet/devcies.yaml:1: not a manifest: expected collection.yaml, "
        "images.yaml or devices/*.yaml in manifests/fleet/",
    ]


def test_every_problem_is_reported_at_once_in_file_and_line_order(tree: Tree) -> None:
    tree.write(COLL, COLLECTION + "owner: x\n")
    tree.write(DEVICES_FILE, DEVICES.replace('"1.1.0"', '"9.9.9"'))
    tree.write(IMAGES, images_yaml().replace("length: 3904", "length: 1"))
    assert [p.split(": ")[0] for p in problems(tree)] == [
        f"{COLL}:6", f"{DEVICES_FILE}:2", f"{IMAGES}:6",
    ]


def test_an_image_id_used_in_two_collections_is_an_error(tree: Tree) -> None:
    tree.write("manifests/other/collection.yaml", "collectionId: 1000aaab\n")
    other = images_yaml(ONE + b"x", b"y").replace("zephyr-1.", "other-1.")
    tree.write("manifests/other/images.yaml", other.replace("3000aaab", "3000aaac"))
    tree.binary("images/fleet/other-1.0.0.signed.bin", ONE + b"x")
    tree.binary("images/fleet/other-1.1.0.signed.bin", b"y")
    assert problems(tree) == [
        "manifests/other/images.yaml:2: images[0].imageId: duplicate image id 3000aaaa, "
        f"first declared at {IMAGES}:2",
    ]


def test_two_collections_with_one_id_is_an_error(tree: Tree) -> None:
    tree.write("manifests/other/collection.yaml", "name: Twin\ncollectionId: 1000aaaa\n")
    assert problems(tree) == [
        "manifests/other/collection.yaml:2: collectionId: duplicate collection id 1000aaaa, "
        f"also used by {COLL}",
    ]


def test_device_files_without_a_collection_manifest_are_an_error(tree: Tree) -> None:
    tree.write("manifests/orphans/devices/a.yaml", 'devices:\n- {"endpoint": "urn:x"}\n')
    assert problems(tree) == [
        "manifests/orphans/devices/a.yaml:1: manifests/orphans/ has no collection.yaml",
    ]


def test_a_symlinked_manifest_is_an_error(tree: Tree) -> None:
    os.symlink(tree.root / DEVICES_FILE, tree.root / "manifests/fleet/devices/b.yaml")
    assert problems(tree) == [
        "manifests/fleet/devices/b.yaml:1: manifest files must not be symlinks",
    ]
