"""`fota init`: a repository `fota validate` accepts, committed on main; refusals exit 2
and write nothing."""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from reconciler.cli import main
from reconciler.sources import load_tree


def test_init_commits_a_valid_empty_desired_state_on_main(tmp_path: Path) -> None:
    root = tmp_path / "new"
    assert main(["init", str(root), "--collection", "trackers"]) == 0
    repo = git.Repo(root)
    try:
        assert repo.active_branch.name == "main" and not repo.is_dirty(untracked_files=True)
        assert "manifests/trackers/collection.yaml" in {e.path for e in repo.tree().traverse()}
    finally:
        repo.close()
    state = load_tree(root)
    assert [c.management.value for c in state.collections.values()] == ["disabled"]
    assert not state.images and not state.devices


@pytest.mark.parametrize(("argv", "message"), [
    (["--collection", "../up"], "--collection '../up'"),
    (["--collection", ""], "--collection ''"),
])
def test_a_bad_collection_name_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["init", str(tmp_path / "new"), *argv]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "new").exists()


def test_a_directory_with_files_is_left_alone(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    assert main(["init", str(tmp_path)]) == 2
    assert "is not an empty directory" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
