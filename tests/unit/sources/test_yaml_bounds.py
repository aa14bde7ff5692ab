"""Hostile manifests are refused cheaply: alias bombs, recursion, oversized files."""

from __future__ import annotations

import pytest
from builders.manifests import Tree

from reconciler.sources import layout, validate_tree
from reconciler.sources.yamlload import read_yaml

COLL = "manifests/fleet/collection.yaml"

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_a_billion_laughs_document_is_rejected_before_expansion(tree: Tree) -> None:
    tree.write(COLL, BILLION_LAUGHS)
    assert [str(p) for p in validate_tree(tree.root)] == [
        f"{COLL}:1: YAML aliases expand beyond the allowed size",
    ]


def test_a_recursive_alias_is_rejected() -> None:
    doc = read_yaml("a: &a [*a]\n")
    assert doc.problems == [(1, "", "YAML aliases expand beyond the allowed size")]


def test_a_few_anchors_and_merge_keys_are_fine() -> None:
    doc = read_yaml("base: &base {site: oslo}\ntags:\n  <<: *base\n  rack: r1\n")
    assert doc.problems == []
    assert doc.value["tags"] == {"site": "oslo", "rack": "r1"}
    assert doc.lines["tags.rack"] == 4


def test_a_merge_key_that_names_no_mapping_is_invalid_yaml_not_a_crash() -> None:
    doc = read_yaml("size: &size 5\ntags:\n  <<: *size\n")
    assert doc.value is None
    assert doc.problems == [
        (1, "", "invalid YAML: expected a mapping or list of mappings for merging, "
         "but found scalar"),
    ]


def test_a_file_over_the_size_limit_is_refused_unread(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(layout, "MAX_MANIFEST_BYTES", 1000)
    tree.write("manifests/fleet/devices/big.yaml", "devices:\n" + "# padding\n" * 100)
    assert [str(p) for p in validate_tree(tree.root)] == [
        "manifests/fleet/devices/big.yaml:1: file is 1009 bytes, over the 1000-byte limit",
    ]


def test_text_that_is_not_utf8_names_its_line(tree: Tree) -> None:
    (tree.root / COLL).write_bytes(b"collectionId: 1000aaaa\nname: \xff\n")
    assert [str(p) for p in validate_tree(tree.root)] == [f"{COLL}:2: not UTF-8 text"]
