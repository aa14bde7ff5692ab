"""`fota --version` names the installed release, as pip shows it."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys


def test_fota_version_prints_the_installed_release_and_exits_0() -> None:
    done = subprocess.run([sys.executable, "-m", "reconciler.cli", "--version"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (
        0, f"fota {importlib.metadata.version('fota-gitops')}\n", "")
