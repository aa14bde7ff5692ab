"""A collection without a `rollout:` section gets safe guards (maxConcurrent 10,
failureThreshold 10%); a rollout section, even an empty one, states its own."""

from __future__ import annotations

from pathlib import Path

from builders.manifests import COLLECTION, Tree

from reconciler.model.desired import FailureThreshold, RolloutPolicy
from reconciler.sources import load_tree


def _rollout(tmp_path: Path, collection_yaml: str) -> RolloutPolicy:
    tree = Tree(tmp_path).valid()
    tree.write("manifests/fleet/collection.yaml", collection_yaml)
    [collection] = load_tree(tree.root).collections.values()
    return collection.rollout


def test_without_a_rollout_section_the_safe_guards_apply(tmp_path: Path) -> None:
    assert "rollout" not in COLLECTION
    assert _rollout(tmp_path, COLLECTION) == RolloutPolicy(
        max_concurrent=10, failure_threshold=FailureThreshold(percent=10.0))


def test_an_empty_rollout_section_means_no_guards(tmp_path: Path) -> None:
    assert _rollout(tmp_path, COLLECTION + "rollout: {}\n") == RolloutPolicy()


def test_a_rollout_section_keeps_what_it_says(tmp_path: Path) -> None:
    assert _rollout(tmp_path, COLLECTION + "rollout:\n  maxConcurrent: 2\n") == \
        RolloutPolicy(max_concurrent=2)
