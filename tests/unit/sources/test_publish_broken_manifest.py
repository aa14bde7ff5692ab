"""`fota publish` on a broken images.yaml names the problem as `fota validate` does,
`path:line: field: message` (no empty field), and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders.manifests import ONE, TWO, Tree, images_yaml

from reconciler.cli import main

IMAGES = "manifests/fleet/images.yaml"


def publish(tree: Tree, tmp_path: Path) -> int:
    build = tmp_path / "zephyr-1.2.0.bin"
    build.write_bytes(b"zephyr 1.2.0 " * 100)
    return main(["publish", str(build), "--collection", "1000aaaa", "--version", "1.2.0",
                 "--repo", str(tree.root)])


def test_invalid_yaml_is_reported_as_path_line_message(
    tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.write(IMAGES, images_yaml(ONE, TWO) + "  - version: [\n")
    before = (tree.root / IMAGES).read_text()
    assert publish(tree, tmp_path) == 2
    assert capsys.readouterr().err == (
        f"fota publish: {IMAGES}:15: invalid YAML: did not find expected node content; "
        "fix it first, nothing was published\n"
    )
    assert (tree.root / IMAGES).read_text() == before
    assert not (tree.root / "images/fleet/zephyr-1.2.0.bin").exists()


def test_schema_problems_name_the_field_and_count_the_rest(
    tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = images_yaml(ONE, TWO).replace("created: 1700000000000", "created: -1")
    tree.write(IMAGES, text + "extra: 1\n")
    assert publish(tree, tmp_path) == 2
    assert capsys.readouterr().err == (
        f"fota publish: {IMAGES}:7: images[0].created: must be at least 0, got -1 "
        "(and 1 more; `fota validate` lists them); fix it first, nothing was published\n"
    )


@pytest.mark.parametrize("manifest", [IMAGES, "manifests/fleet/collection.yaml"])
def test_a_manifest_that_is_not_utf8_is_named_with_its_line_not_a_traceback(
    tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str], manifest: str
) -> None:
    path = tree.root / manifest
    before = path.read_bytes() + b"# caf\xe9\n"
    path.write_bytes(before)
    line = before.count(b"\n")
    assert publish(tree, tmp_path) == 2
    assert capsys.readouterr().err == (
        f"fota publish: {manifest}:{line}: not UTF-8 text; fix it first, nothing was published\n"
    )
    assert path.read_bytes() == before
    assert not (tree.root / "images/fleet/zephyr-1.2.0.bin").exists()
