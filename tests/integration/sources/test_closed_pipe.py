"""`fota publish | head` and `fota validate | head`: a reader that stops early costs no
traceback; publish keeps its exit code (the image is published), validate exits 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from builders.manifests import Tree


def _fota_into_a_closed_pipe(*argv: str) -> subprocess.CompletedProcess[str]:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes a byte
    try:
        return subprocess.run([sys.executable, "-m", "reconciler.cli", *argv], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    finally:
        os.close(write)


def test_publish_into_a_closed_pipe_publishes_and_exits_0_without_a_traceback(
        tmp_path: Path) -> None:
    tree = Tree(tmp_path / "repo").valid()
    build = tree.binary("out/zephyr-2.0.0.bin", b"\x3d\xb8\xf3\x96" + b"zephyr 2.0.0 " * 300)
    done = _fota_into_a_closed_pipe("publish", str(build), "--collection", "1000aaaa",
                                    "--version", "2.0.0", "--repo", str(tree.root))
    assert (done.returncode, done.stderr) == (0, "")
    assert 'version: "2.0.0"' in (tree.root / "manifests/fleet/images.yaml").read_text()


def test_validate_into_a_closed_pipe_exits_1_without_a_traceback(tmp_path: Path) -> None:
    tree = Tree(tmp_path / "repo").valid()
    tree.write("manifests/fleet/collection.yaml", "colour: 1\n")
    done = _fota_into_a_closed_pipe("validate", str(tree.root))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
