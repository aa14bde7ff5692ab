"""Which file is which: the directory layout of `manifests/`.

    manifests/<collection>/collection.yaml     one collection (required)
    manifests/<collection>/images.yaml         its firmware images (optional)
    manifests/<collection>/devices/*.yaml      its devices, split over any number of files

`group_files` sorts a snapshot's files into per-collection groups and reports files that
fit nowhere, symlinks and oversized files. Used by `reconciler.sources.assemble`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.sources.parsing import MAX_MANIFEST_BYTES
from reconciler.sources.problems import Problem
from reconciler.sources.snapshot import FileEntry

_YAML = (".yaml", ".yml")


@dataclass
class Group:
    """The manifest files of one collection directory."""

    directory: str  # e.g. "manifests/trackers"
    collection: FileEntry | None = None
    images: FileEntry | None = None
    devices: list[FileEntry] = field(default_factory=list)


def group_files(entries: list[FileEntry]) -> tuple[list[Group], list[Problem]]:
    groups: dict[str, Group] = {}
    problems: list[Problem] = []
    for entry in sorted(entries, key=lambda e: e.path):
        parts = entry.path.split("/")
        if not entry.path.endswith(_YAML) and not entry.symlink:
            continue  # READMEs and the like are welcome beside the manifests
        problem = _unusable(entry, parts)
        if problem is not None:
            problems.append(Problem(entry.path, 1, "", problem))
            continue
        group = groups.setdefault(parts[1], Group("/".join(parts[:2])))
        problem = _place(group, entry, parts)
        if problem is not None:
            problems.append(Problem(entry.path, 1, "", problem))
    for group in groups.values():
        if group.collection is None:
            for entry in ([group.images] if group.images else []) + group.devices:
                message = f"{group.directory}/ has no collection.yaml"
                problems.append(Problem(entry.path, 1, "", message))
    return [g for g in groups.values() if g.collection is not None], problems


def _unusable(entry: FileEntry, parts: list[str]) -> str | None:
    if entry.symlink:
        return "manifest files must not be symlinks"
    if entry.size > MAX_MANIFEST_BYTES:
        return f"file is {entry.size} bytes, over the {MAX_MANIFEST_BYTES}-byte limit"
    if len(parts) < 3:
        return "manifests live in manifests/<collection>/ (collection.yaml, images.yaml, devices/)"
    return None


def _place(group: Group, entry: FileEntry, parts: list[str]) -> str | None:
    name = parts[2]
    if len(parts) == 3 and name.rsplit(".", 1)[0] in ("collection", "images"):
        kind = name.rsplit(".", 1)[0]
        if getattr(group, kind) is not None:
            return f"{group.directory}/ already has a {kind} manifest"
        setattr(group, kind, entry)
        return None
    if name == "devices" and len(parts) >= 4:
        group.devices.append(entry)
        return None
    return (
        "not a manifest: expected collection.yaml, images.yaml or devices/*.yaml "
        f"in {group.directory}/"
    )
