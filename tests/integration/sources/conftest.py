"""Real git repositories in tmp_path holding the unit tests' valid tree."""

from collections.abc import Iterator
from pathlib import Path

import git
import pytest
from builders.manifests import Tree


class GitTree(Tree):
    """A `Tree` that is also a git repository on branch main."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.repo = git.Repo.init(root, initial_branch="main")

    def commit(self, message: str) -> str:
        self.repo.git.add("-A")
        return str(self.repo.index.commit(message).hexsha)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[GitTree]:
    tree = GitTree(tmp_path / "repo")
    tree.valid()
    tree.commit("initial desired state")
    yield tree
    tree.repo.close()
