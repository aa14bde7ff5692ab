"""`fota publish`: entry and JSON shape, idempotence, both conflicts, --commit."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import git
import pytest
from builders.manifests import ONE, Tree

from reconciler.cli import main
from reconciler.sources import validate_tree
from reconciler.sources.parsing import parse_images

IMAGES = "manifests/fleet/images.yaml"
BUILD = b"\x3d\xb8\xf3\x96" + b"zephyr 1.2.0 " * 280


def publish(tree: Tree, image: Path, *extra: str) -> int:
    return main(["publish", str(image), "--collection", "1000aaaa", "--repo", str(tree.root),
                 *extra])


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and ".git" not in p.parts}


@pytest.fixture
def build(tmp_path: Path) -> Path:
    path = tmp_path / "out" / "zephyr.signed.bin"
    path.parent.mkdir()
    path.write_bytes(BUILD)
    return path


def test_publish_adds_a_valid_entry_and_prints_the_reference_shape(
    tree: Tree, build: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert publish(tree, build, "--version", "1.2.0", "--tag", "git=4f2a91c") == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == ["imageId", "version", "filename", "sha256", "length",
                             "collectionId", "created", "tags"]
    assert printed["version"] == "1.2.0" and printed["filename"] == "zephyr.signed.bin"
    assert printed["sha256"] == hashlib.sha256(BUILD).hexdigest()
    assert printed["length"] == len(BUILD) and printed["collectionId"] == "1000aaaa"
    assert printed["tags"] == {"git": "4f2a91c"} and printed["created"] > 1_700_000_000_000
    assert (tree.root / "images/fleet/zephyr.signed.bin").read_bytes() == BUILD
    assert validate_tree(tree.root) == []


def test_a_collection_without_images_yaml_gets_one_holding_the_entry(
    tree: Tree, build: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tree.root / IMAGES).unlink()
    assert publish(tree, build, "--version", "1.2.0") == 0
    printed = json.loads(capsys.readouterr().out)
    doc = parse_images((tree.root / IMAGES).read_text())
    assert doc.problems == [] and [e["sha256"] for _, e in doc.value["entries"]] == [
        printed["sha256"]
    ]


def test_an_images_yml_manifest_gets_the_entry_instead_of_a_second_images_yaml(
    tree: Tree, build: Path
) -> None:
    (tree.root / IMAGES).rename(tree.root / "manifests/fleet/images.yml")
    assert publish(tree, build, "--version", "1.2.0") == 0
    assert not (tree.root / IMAGES).exists()
    assert "version: \"1.2.0\"" in (tree.root / "manifests/fleet/images.yml").read_text()
    assert validate_tree(tree.root) == []


def test_the_default_version_is_the_sha256_hex(
    tree: Tree, build: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert publish(tree, build) == 0
    assert json.loads(capsys.readouterr().out)["version"] == hashlib.sha256(BUILD).hexdigest()


def test_publishing_the_same_bytes_again_changes_nothing(
    tree: Tree, build: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert publish(tree, build, "--version", "1.2.0") == 0
    first = json.loads(capsys.readouterr().out)
    before = snapshot(tree.root)
    assert publish(tree, build, "--version", "1.2.0") == 0
    assert json.loads(capsys.readouterr().out) == first
    assert publish(tree, build) == 0
    assert snapshot(tree.root) == before



def refused(tree: Tree, image: Path, version: str,
            capsys: pytest.CaptureFixture[str]) -> str:
    """Publish `image` as `version`, expecting a refusal that leaves the tree untouched;
    returns what it said on stderr."""
    before = snapshot(tree.root)
    assert publish(tree, image, "--version", version) == 1
    err = capsys.readouterr().err
    assert snapshot(tree.root) == before
    return err

def test_other_bytes_under_an_existing_version_are_refused(
    tree: Tree, build: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused(tree, build, "1.0.0", capsys)
    assert "version '1.0.0' already exists with different bytes" in err


def test_the_same_bytes_under_another_version_are_refused(
    tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    again = tmp_path / "rebuilt.bin"
    again.write_bytes(ONE)
    err = refused(tree, again, "9.9.9", capsys)
    assert "already published as version '1.0.0' (image 3000aaaa)" in err


def test_an_unknown_collection_is_a_usage_error(
    tree: Tree, build: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["publish", str(build), "--collection", "nope", "--repo", str(tree.root)])
    assert code == 2 and "no collection 'nope'" in capsys.readouterr().err


def test_an_image_file_that_cannot_be_read_is_a_usage_error_and_writes_nothing(
    tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "out" / "never-built.bin"
    before = snapshot(tree.root)
    assert publish(tree, missing, "--version", "1.2.0") == 2
    assert capsys.readouterr().err == (
        f"fota publish: cannot read {missing}: No such file or directory\n"
    )
    assert snapshot(tree.root) == before


def test_a_second_build_with_the_same_file_name_keeps_both_binaries(
    tree: Tree, build: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert publish(tree, build, "--version", "1.2.0") == 0
    capsys.readouterr()
    build.write_bytes(BUILD + b"fix")
    assert publish(tree, build, "--version", "1.2.1") == 0
    assert json.loads(capsys.readouterr().out)["version"] == "1.2.1"
    assert validate_tree(tree.root) == []
    assert len(list((tree.root / "images/fleet").glob("*zephyr.signed.bin"))) == 2


def test_commit_records_exactly_the_binary_and_the_manifest(tree: Tree, build: Path) -> None:
    repo = git.Repo.init(tree.root)
    repo.index.add([p for p in snapshot(tree.root)])
    repo.index.commit("initial desired state")
    assert publish(tree, build, "--version", "1.2.0", "--commit") == 0
    head = repo.head.commit
    assert head.message.startswith("Publish zephyr.signed.bin as version 1.2.0")
    assert sorted(head.stats.files) == ["images/fleet/zephyr.signed.bin", IMAGES]
    assert not repo.is_dirty(untracked_files=True)
    repo.close()


def test_commit_refuses_to_sweep_up_other_staged_changes(
    tree: Tree, build: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = git.Repo.init(tree.root)
    repo.index.add([p for p in snapshot(tree.root)])
    repo.index.commit("initial desired state")
    tree.write("manifests/fleet/collection.yaml", "collectionId: 1000aaaa\nname: WIP\n")
    repo.index.add(["manifests/fleet/collection.yaml"])
    before = snapshot(tree.root)
    assert publish(tree, build, "--version", "1.2.0", "--commit") == 2
    assert "other changes are staged" in capsys.readouterr().err
    assert snapshot(tree.root) == before and len(list(repo.iter_commits())) == 1
    repo.close()
