"""The CI files `fota init` writes and docs/ci.md shows: the exact commands they contain
run against a real repository made by `fota init` (all but `pip install` and the
firmware's own build step), and docs/ci.md shows the files verbatim."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import git
import pytest
import yaml

from reconciler.cli import main
from reconciler.sources import scaffold

REPO = Path(__file__).resolve().parents[3]
# Not run here: the registry install (the package under test is installed) and the
# firmware build that the example stands for.
NOT_RUN = {"pip install fota-gitops", "make firmware",
           'gh pr comment "$PR" --body-file plan.md',  # posts to GitHub
           'git fetch origin "$CI_MERGE_REQUEST_TARGET_BRANCH_NAME"'}  # stands in below
# What CI provides: the pull request's target branch, fetched as origin/main.
CI_ENV = {"GITHUB_BASE_REF": "main", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"}


def _steps(workflow: str) -> list[str]:
    jobs = yaml.safe_load(workflow)["jobs"].values()
    return [step["run"] for job in jobs for step in job["steps"] if "run" in step]


def _validate_commands(root: Path) -> list[str]:
    gitlab = yaml.safe_load((root / ".gitlab-ci.yml").read_text())
    pre_commit = yaml.safe_load((root / ".pre-commit-config.yaml").read_text())
    offered = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    return [
        *_steps((root / ".github/workflows/fota.yml").read_text()),
        *(line for job in gitlab.values() for line in job["script"]),
        *(hook["entry"] for repo in pre_commit["repos"] for hook in repo["hooks"]),
        *(hook["entry"] for hook in offered),
    ]


def _run(command: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False, env={**os.environ, "PATH": path, **env})


def _runnable(commands: list[str]) -> list[str]:
    assert NOT_RUN & set(commands), commands  # the install step is there, as written
    return [c for c in commands if c not in NOT_RUN]


@pytest.fixture
def initialised(tmp_path: Path) -> Path:
    root = tmp_path / "desired"
    assert main(["init", str(root)]) == 0
    _run("git update-ref refs/remotes/origin/main HEAD", root)  # as CI's fetch leaves it
    return root


def test_the_validate_commands_of_every_ci_file_pass_on_a_new_repository(
        initialised: Path) -> None:
    commands = _runnable(_validate_commands(initialised))
    assert len(commands) == 6
    for command in commands:
        done = _run(command, initialised, **CI_ENV)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    assert "**This change moves no devices.**" in (initialised / "plan.md").read_text()


def test_the_validate_commands_fail_a_broken_pull_request_and_annotate_it(
        initialised: Path) -> None:
    coll = initialised / "manifests/fleet/collection.yaml"
    coll.write_text(coll.read_text().replace('# target: "1.0.0"', 'target: "1.0.0"'))
    for command in _runnable(_validate_commands(initialised)):
        if command.startswith("fota plan"):
            continue  # it reads committed revisions: the broken edit is not committed
        done = _run(command, initialised, **CI_ENV)
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert "firmware.target: no image of collection" in done.stdout
    github = _run("fota validate --format github", initialised)
    assert github.stdout.startswith(
        "::error file=manifests/fleet/collection.yaml,line=8::firmware.target: ")


def test_the_firmware_publish_job_commits_the_image_and_pushes_a_branch(
        initialised: Path, tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    git.Repo.clone_from(initialised, origin, bare=True).close()
    firmware = tmp_path / "firmware"  # the firmware repository's checkout, as in CI
    git.Repo.clone_from(origin, firmware / "desired-state").close()
    (firmware / "build").mkdir()
    (firmware / "build/app.bin").write_bytes(b"\x7fFW" + bytes(range(256)) * 8)
    for command in _runnable(_steps(scaffold.publish_workflow("fleet"))):
        done = _run(command, firmware, GITHUB_REF_NAME="v1.2.0")
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    pushed = git.Repo(origin)
    try:
        commit = pushed.commit("publish/v1.2.0")
        images = commit.tree / "manifests/fleet/images.yaml"
        assert 'version: "1.2.0"' in images.data_stream.read().decode()
        assert commit.author.name == "firmware CI"
        assert commit.parents[0].hexsha == pushed.commit("main").hexsha
    finally:
        pushed.close()


def test_docs_ci_md_shows_the_files_as_they_are_written_and_tested() -> None:
    doc = (REPO / "docs/ci.md").read_text()
    files: dict[str, Any] = scaffold.files("fleet")
    for name in (".github/workflows/fota.yml", ".gitlab-ci.yml", ".pre-commit-config.yaml"):
        assert files[name] in doc, name
    assert scaffold.publish_workflow("fleet") in doc
    assert (REPO / ".pre-commit-hooks.yaml").read_text() in doc
