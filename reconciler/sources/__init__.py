"""Desired state from git: manifests -> validated, immutable `DesiredState`.

Public surface (see docs/contracts.md): `Problem`, `validate_tree`, `load_tree`,
`SourceStatus`, `GitSource`. The manifest format is documented in docs/manifests.md.
The controller owns a `GitSource`; `fota validate` and `fota publish` live here too.
"""

from reconciler.sources.git_source import GitSource, SourceStatus
from reconciler.sources.problems import Problem
from reconciler.sources.tree import load_tree, validate_tree

__all__ = ["GitSource", "Problem", "SourceStatus", "load_tree", "validate_tree"]
