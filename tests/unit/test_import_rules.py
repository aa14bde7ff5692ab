"""The import contracts in pyproject.toml catch what they are for.

`make lint` runs `lint-imports` on the tree. This test plants forbidden imports in a copy
of the package (relative ones too, which the old ast walk missed) and checks that each
kind of contract breaks and names the planted import, so a contract that can no longer
fail is noticed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# module under reconciler/ -> (planted line, the import lint-imports must report)
PLANTED = {
    "engine/__init__.py": ("from ..lwm2m import server", "reconciler.engine -> reconciler.lwm2m"),
    "model/__init__.py": ("from .. import store", "reconciler.model -> reconciler.store"),
    "api/__init__.py": ("from ..sources import layout", "reconciler.api -> reconciler.sources"),
    "store/__init__.py": ("import aiocoap", "reconciler.store -> aiocoap"),
}


def test_planted_imports_break_the_contracts_and_are_named(tmp_path: Path) -> None:
    shutil.copytree(
        REPO / "reconciler", tmp_path / "reconciler",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    for module, (line, _) in PLANTED.items():
        with (tmp_path / "reconciler" / module).open("a") as f:
            f.write(f"\n{line}\n")
    # run in the copy's directory: lint-imports puts it first on sys.path
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    missed = [reported for _, reported in PLANTED.values() if reported not in result.stdout]
    assert missed == [], result.stdout
