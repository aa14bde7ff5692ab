"""Snapshot -> validated `DesiredState`: every cross-object rule, all problems at once.

`Assembler.load` groups the files (`layout`), parses each through the blob-keyed
`ParseCache`, checks collections and images (ids, unique version and sha256 per
collection, the binary's sha256 and length, paths inside the repo), resolves targets,
builds devices (memoised per file), checks fleet-wide uniqueness and reads
`manifests/notifications.yaml` (`notifications`) against the collections. Used by
`reconciler.sources.tree` (working directories) and `reconciler.sources.git_source`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from reconciler.heap import no_full_collections
from reconciler.model.desired import Collection, DesiredState, FirmwareImage
from reconciler.model.ids import is_valid_id
from reconciler.model.notify import NO_NOTIFICATIONS
from reconciler.sources.devices import BuiltDevices, Targets, build_devices, merge_devices
from reconciler.sources.images import ImageCheck, check_images
from reconciler.sources.layout import Group, group_files
from reconciler.sources.notifications import notifications_from, split_notifications
from reconciler.sources.parsing import ParseCache, ParsedDoc
from reconciler.sources.policy import collection_from
from reconciler.sources.problems import Problem, located
from reconciler.sources.schema import derive_id, malformed_id
from reconciler.sources.snapshot import FileEntry, Snapshot


@dataclass
class _Part:
    """One collection directory on its way to a `Collection`."""

    group: Group
    doc: ParsedDoc
    collection_id: str
    images: ImageCheck = field(default_factory=ImageCheck)


class Assembler:
    """Keeps the parse cache and the per-file device memo across loads."""

    def __init__(self, cache: ParseCache) -> None:
        self.cache = cache
        self._memo: dict[tuple[str, str, str], BuiltDevices] = {}
        self._memo_used: set[tuple[str, str, str]] = set()

    def load(self, snap: Snapshot) -> tuple[DesiredState | None, list[Problem]]:
        # Parsing a big commit makes millions of objects: no full collection meanwhile.
        with no_full_collections():
            return self._load(snap)

    def _load(self, snap: Snapshot) -> tuple[DesiredState | None, list[Problem]]:
        notify_file, entries = split_notifications(snap.manifest_files())
        groups, problems = group_files(entries)
        parts = [self._collection(snap, group, problems) for group in groups]
        _unique_collections(parts, problems)
        notifications = NO_NOTIFICATIONS
        if notify_file is not None:
            names = {p.group.directory.split("/")[-1]: p.collection_id for p in parts}
            names.update((p.collection_id, p.collection_id) for p in parts)
            notifications, found = notifications_from(notify_file, _reader(snap, notify_file),
                                                      names)
            problems.extend(found)
        images: dict[str, FirmwareImage] = {}
        for part in parts:
            part.images = check_images(snap, self.cache, part.group.images, part.collection_id)
            problems.extend(part.images.problems)
        _unique_images(parts, images, problems)
        owners = {image_id: i.collection_id for image_id, i in images.items()}
        collections: dict[str, Collection] = {}
        built: list[BuiltDevices] = []
        used: set[tuple[str, str, str]] = set()
        for part in parts:
            targets = _targets(part, owners)
            collection, found = collection_from(part.doc, part.group.collection, targets)
            collections[part.collection_id] = collection
            problems.extend(found)
            for entry in part.group.devices:
                built.append(self._devices(snap, entry, part, targets, used))
        devices, found = merge_devices(built)
        problems.extend(found)
        for devices_of_file in built:
            problems.extend(devices_of_file.problems)
        self._retain_memo(used, failed=bool(problems))
        if problems:
            return None, sorted(problems)
        frozen = MappingProxyType  # a snapshot nobody can edit in place
        return DesiredState(snap.revision, frozen(collections), frozen(images), frozen(devices),
                            notifications), []

    def _collection(self, snap: Snapshot, group: Group, problems: list[Problem]) -> _Part:
        entry = group.collection
        assert entry is not None  # group_files only returns groups that have one
        doc: ParsedDoc = self.cache.get("collection", entry.key, _reader(snap, entry))
        problems.extend(located(entry.path, doc.problems))
        value: dict[str, Any] = doc.value or {}
        given = value.get("collectionId")
        collection_id = given or derive_id("collection", group.directory)
        if given and not is_valid_id(given):
            line = doc.line_of("collectionId")
            problems.append(Problem(entry.path, line, "collectionId", malformed_id(given)))
        return _Part(group, doc, collection_id)

    def _devices(
        self, snap: Snapshot, entry: FileEntry, part: _Part, targets: Targets,
        used: set[tuple[str, str, str]],
    ) -> BuiltDevices:
        key = (entry.key, part.collection_id, part.images.key)
        used.add(key)
        built = self._memo.get(key)
        if built is None or built.path != entry.path:
            rows = self.cache.get("devices", entry.key, _reader(snap, entry))
            built = build_devices(entry.path, rows, targets)
            self._memo[key] = built
        return built

    def _retain_memo(self, used: set[tuple[str, str, str]], *, failed: bool) -> None:
        """Keep this load's entries, and the last good load's only while this one failed:
        a bad commit followed by its fix (or a return to the last good state) then costs
        nothing, while after a good load the devices it dropped are freed at once (a
        200,000-device memo kept one revision longer was ~80 MB)."""
        keep = used | self._memo_used if failed else used
        self._memo = {k: v for k, v in self._memo.items() if k in keep}
        if not failed:
            self._memo_used = used


def _reader(snap: Snapshot, entry: FileEntry) -> Any:
    return lambda: snap.read(entry)


def _targets(part: _Part, owners: dict[str, str]) -> Targets:
    mine = part.images.images
    return Targets(
        collection_id=part.collection_id,
        versions={image.version: image.image_id for image in mine},
        image_ids=frozenset(image.image_id for image in mine),
        foreign={i: c for i, c in owners.items() if c != part.collection_id},
        broken=part.images.broken,
    )


def _unique_collections(parts: list[_Part], problems: list[Problem]) -> None:
    first: dict[str, str] = {}
    for part in parts:
        assert part.group.collection is not None
        path = part.group.collection.path
        if part.collection_id in first:
            cid = part.collection_id
            message = f"duplicate collection id {cid}, also used by {first[cid]}"
            line = part.doc.line_of("collectionId")
            problems.append(Problem(path, line, "collectionId", message))
        else:
            first[part.collection_id] = path


def _unique_images(
    parts: list[_Part], images: dict[str, FirmwareImage], problems: list[Problem]
) -> None:
    where: dict[str, str] = {}
    for part in parts:
        for image, (path, line, field_path) in zip(
            part.images.images, part.images.places, strict=True
        ):
            if image.image_id in images:
                first = where[image.image_id]
                message = f"duplicate image id {image.image_id}, first declared at {first}"
                problems.append(Problem(path, line, field_path, message))
                continue
            images[image.image_id] = image
            where[image.image_id] = f"{path}:{line}"
