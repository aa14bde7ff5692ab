"""An empty collection.yaml is refused: loaded as-is it would turn management off and
change the derived collection id, so a truncated file would silently stop a fleet."""

from __future__ import annotations

import pytest
from builders.manifests import Tree

from reconciler.cli import main
from reconciler.sources import validate_tree
from reconciler.sources.parsing import parse_collection

COLL = "manifests/fleet/collection.yaml"
EMPTY = (
    "collection manifest is empty (truncated?); it would silently stop managing the "
    "collection: write `firmware: {management: disabled}` if that is meant"
)


@pytest.mark.parametrize("text", ["", "\n", "# trackers\n\n# more\n", "---\n", "~\n", "{}\n"])
def test_an_empty_or_comment_only_collection_is_refused_on_line_one(text: str) -> None:
    assert parse_collection(text).problems == [(1, "", EMPTY)]


def test_fota_validate_rejects_a_truncated_collection(
    tree: Tree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.write(COLL, "")
    assert main(["validate", str(tree.root)]) == 1
    assert capsys.readouterr().out.splitlines() == [f"{COLL}:1: {EMPTY}"]


def test_a_collection_without_management_is_fine_when_it_says_anything_else(
    tree: Tree,
) -> None:
    tree.write(COLL, "collectionId: 1000aaaa\n")
    assert validate_tree(tree.root) == []
    tree.write(COLL, "firmware: {management: disabled}\n")
    assert validate_tree(tree.root) == []
