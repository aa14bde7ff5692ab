"""A 0-byte file is never a firmware image: `fota publish` refuses it and writes
nothing, and `fota validate` refuses an entry declaring `length: 0`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from builders.manifests import ONE, TWO, Tree, images_yaml

from reconciler.cli import main

IMAGES = "manifests/fleet/images.yaml"


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_publish_refuses_an_empty_image_and_writes_nothing(
    tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    before = snapshot(tree.root)
    code = main(["publish", str(empty), "--collection", "1000aaaa", "--version", "0.0.1",
                 "--repo", str(tree.root)])
    assert code == 2
    assert capsys.readouterr().err == (
        f"fota publish: {empty}: an empty (0-byte) file is not a firmware image; "
        "nothing was published\n"
    )
    assert snapshot(tree.root) == before


def test_validate_refuses_an_image_entry_of_zero_bytes(
    tree: Tree, capsys: pytest.CaptureFixture[str]
) -> None:
    text = images_yaml(ONE, TWO).replace(
        f"sha256: {hashlib.sha256(TWO).hexdigest()}\n    length: {len(TWO)}",
        f"sha256: {hashlib.sha256(b'').hexdigest()}\n    length: 0",
    )
    tree.write(IMAGES, text)
    tree.binary("images/fleet/zephyr-1.1.0.signed.bin", b"")
    assert main(["validate", str(tree.root)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{IMAGES}:12: images[1].length: an empty (0-byte) file is not a firmware image",
    ]
