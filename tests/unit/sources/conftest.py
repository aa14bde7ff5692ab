"""The `tree` fixture: a valid desired-state tree in tmp_path."""

from pathlib import Path

import pytest
from builders.manifests import Tree


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path / "repo").valid()
