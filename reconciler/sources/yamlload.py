"""Bounded YAML reading with line numbers: the slow, general path for every manifest.

`read_yaml` composes one document (libyaml when available), refuses alias expansion past
a budget before anything is built (a "billion laughs" file fails in milliseconds), and
turns the node graph into plain Python values plus a map `field path -> line` so every
later check can name `file:line: field`. Called by `reconciler.sources.parsing`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from reconciler.sources.problems import LocalProblem

# Nodes an aliased document may expand to beyond its own size; real manifests use a few
# anchors for shared tags, a bomb needs billions.
ALIAS_EXPANSION_BUDGET = 100_000
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class YamlDoc:
    """A document's value and the 1-based line of every node, keyed by field path;
    `written` keeps the source text of numbers YAML reads differently from how they are
    written (`2.30` is the float 2.3), so a hint can quote what the author wrote."""

    value: Any = None
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[LocalProblem] = field(default_factory=list)
    written: dict[str, str] = field(default_factory=dict)


def read_yaml(text: str) -> YamlDoc:
    """Parse `text`; syntax errors, bombs and duplicate keys come back as problems."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        return YamlDoc(problems=[_invalid(exc)])
    except yaml.YAMLError as exc:
        return YamlDoc(problems=[(1, "", f"invalid YAML: {exc}")])
    doc = YamlDoc()
    if node is None:
        return doc
    if _expanded_size(node) > _count_unique(node) + ALIAS_EXPANSION_BUDGET:
        doc.problems.append(
            (node.start_mark.line + 1, "", "YAML aliases expand beyond the allowed size")
        )
        return doc
    try:
        doc.value = _Converter(doc).convert(node, "")
    except yaml.MarkedYAMLError as exc:  # e.g. a merge key that names no mapping
        doc.problems.append(_invalid(exc))
    return doc


def _invalid(exc: yaml.MarkedYAMLError) -> LocalProblem:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 1
    return (line, "", f"invalid YAML: {exc.problem or exc.context}")


def child_path(parent: str, key: object) -> str:
    """`images[0].sha256` style paths, as every problem names its field."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else str(key)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _count_unique(root: yaml.Node) -> int:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend(_children(node))
    return len(seen)


def _expanded_size(root: yaml.Node) -> int:
    """Nodes the document would have with every alias copied out (memoised per node, so
    the cost is linear in the composed graph however deep the nesting). A recursive alias
    counts as infinite."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    infinite = ALIAS_EXPANSION_BUDGET * 1000

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            return infinite
        active.add(key)
        total = 1 + sum(size(child) for child in _children(node))
        active.discard(key)
        sizes[key] = min(total, infinite)
        return sizes[key]

    try:
        return size(root)
    except RecursionError:  # absurd nesting depth is hostile input too
        return infinite


class _Converter:
    """Node graph -> plain values; records lines and flags duplicate mapping keys."""

    def __init__(self, doc: YamlDoc) -> None:
        self.doc = doc
        self.constructor = yaml.SafeLoader("")

    def convert(self, node: yaml.Node, path: str) -> Any:
        self.doc.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, child_path(path, i)) for i, item in enumerate(node.value)]
        value = self.constructor.construct_object(node, deep=True)
        if type(value) in (int, float) and node.value != str(value):
            self.doc.written[path] = node.value
        return value

    def _mapping(self, node: yaml.MappingNode, path: str) -> dict[Any, Any]:
        self.constructor.flatten_mapping(node)  # resolves `<<: *defaults` merge keys
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.doc.problems.append((line, path, "mapping keys must be plain scalars"))
                continue
            key = self.constructor.construct_object(key_node)
            sub = child_path(path, str(key))
            if key in result:
                self.doc.problems.append((line, sub, "duplicate key"))
                continue
            result[key] = self.convert(value_node, sub)
        return result
