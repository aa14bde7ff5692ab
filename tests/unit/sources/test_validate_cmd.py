"""`fota validate`: exit codes, one line per problem, GitHub annotations."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders.manifests import COLLECTION, Tree

from reconciler.cli import main
from reconciler.sources import Problem, validate_tree

COLL = "manifests/fleet/collection.yaml"
REPO_ROOT = Path(__file__).resolve().parents[3]


def test_a_valid_repository_exits_zero(tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tree.root)]) == 0
    assert capsys.readouterr().out == ""


def test_problems_print_one_per_line_and_exit_one(
    tree: Tree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.write(COLL, COLLECTION.replace("management: collection", "management: all") + "x: 1\n")
    assert main(["validate", str(tree.root)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{COLL}:4: firmware.management: must be one of 'device', 'collection' or 'disabled', "
        "got 'all'",
        f"{COLL}:6: x: unknown key",
    ]


def test_the_github_format_prints_error_annotations(
    tree: Tree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.write(COLL, COLLECTION + "x: 1\n")
    assert main(["validate", str(tree.root), "--format", "github"]) == 1
    assert capsys.readouterr().out == f"::error file={COLL},line=6::x: unknown key\n"


def test_annotations_escape_what_github_would_misread() -> None:
    problem = Problem("a:b,c.yaml", 3, "tags.x", "50% done\nnext")
    assert problem.github() == "::error file=a%3Ab%2Cc.yaml,line=3::tags.x: 50%25 done%0Anext"
    assert str(Problem("f.yaml", 1, "", "broken")) == "f.yaml:1: broken"


def test_a_directory_without_manifests_is_reported(tmp_path: Path) -> None:
    assert [str(p) for p in validate_tree(tmp_path)] == [
        f"manifests:1: no manifests/ directory in {tmp_path}",
    ]


def test_the_repositorys_own_example_desired_state_is_valid() -> None:
    assert validate_tree(REPO_ROOT) == []
