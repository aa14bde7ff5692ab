"""The data flow is one way: each package imports only the layers below it.

An ast walk over reconciler/ (as kopf checks its import rules), so a shortcut from, say,
the API into the LwM2M layer fails the suite instead of slipping into a review.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "reconciler"

# package -> the packages of ours it may import ("errors" is shared by all)
ALLOWED: dict[str, set[str]] = {
    "model": set(),
    "sources": {"model"},
    "engine": {"model"},
    "lwm2m": {"model"},
    "store": {"model"},
    "simulator": {"model", "lwm2m"},
    "api": {"model", "store"},
    "controller": {"model", "engine", "lwm2m", "store", "sources", "api"},
}
# Only the wire layers talk CoAP.
AIOCOAP_ALLOWED = {"lwm2m", "simulator"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _violations() -> list[str]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        package = parts[0] if len(parts) > 1 else None
        if package not in ALLOWED:
            continue
        for name in _imports(path):
            top = name.split(".")
            if top[0] == "aiocoap" and package not in AIOCOAP_ALLOWED:
                found.append(f"{path}: imports aiocoap")
            if top[0] != "reconciler" or len(top) < 2:
                continue
            target = top[1]
            if target in ("errors", package) or target in ALLOWED[package]:
                continue
            found.append(f"{path}: {package} may not import reconciler.{target}")
    return found


def test_every_package_imports_only_the_layers_below_it() -> None:
    assert _violations() == []


def test_the_rule_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("from reconciler.lwm2m import server\nimport aiocoap\n")
    assert _imports(sample) == {"reconciler.lwm2m", "aiocoap"}
