"""A collection's `images.yaml`: image ids, per-collection uniqueness of version and
sha256, and each declared sha256/length against the binary the path names.

The binary is found through the snapshot (inside the repository, symlinks followed only
while they stay inside) and hashed once per git blob through the parse cache. Called by
`reconciler.sources.assemble`.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from reconciler.model.desired import FirmwareImage
from reconciler.model.ids import is_valid_id
from reconciler.sources.parsing import ParseCache, ParsedDoc
from reconciler.sources.problems import Problem, located
from reconciler.sources.schema import derive_id
from reconciler.sources.snapshot import FileEntry, Snapshot


@dataclass
class ImageCheck:
    images: list[FirmwareImage] = field(default_factory=list)
    places: list[tuple[str, int, str]] = field(default_factory=list)  # file, line, field
    problems: list[Problem] = field(default_factory=list)
    key: str = ""  # the images.yaml blob: device targets resolve against it
    broken: frozenset[str] = frozenset()  # versions/ids of entries with schema errors


def check_images(
    snap: Snapshot, cache: ParseCache, entry: FileEntry | None, collection_id: str
) -> ImageCheck:
    if entry is None:
        return ImageCheck()
    doc: ParsedDoc = cache.get("images", entry.key, lambda: snap.read(entry))
    value = doc.value or {"entries": [], "broken": []}
    check = ImageCheck(problems=located(entry.path, doc.problems), key=entry.key,
                       broken=frozenset(value["broken"]))
    versions: dict[str, str] = {}
    digests: dict[str, str] = {}
    for index, fields in value["entries"]:
        prefix = f"images[{index}]"

        def problem(name: str, message: str, prefix: str = prefix) -> None:
            path = f"{prefix}.{name}"
            check.problems.append(Problem(entry.path, doc.line_of(path), path, message))

        image = _image(fields, collection_id)
        if not is_valid_id(image.image_id):
            problem("imageId", f"malformed id {image.image_id!r}: use 4 to 16 base-24 digits")
        _first(versions, image.version, prefix, "version", problem)
        _first(digests, image.sha256, prefix, "sha256", problem)
        _binary(snap, cache, image, problem)
        check.images.append(image)
        check.places.append((entry.path, doc.line_of(f"{prefix}.imageId"), f"{prefix}.imageId"))
    return check


def _image(value: dict[str, Any], collection_id: str) -> FirmwareImage:
    image_id = value["imageId"] or derive_id("image", f"{collection_id}:{value['sha256']}")
    return FirmwareImage(
        image_id=image_id,
        collection_id=collection_id,
        version=value["version"],
        filename=value["filename"] or posixpath.basename(value["path"]),
        sha256=value["sha256"],
        length=value["length"],
        created=value["created"],
        path=value["path"],
        tags=MappingProxyType(value["tags"]),
    )


def _first(seen: dict[str, str], value: str, prefix: str, name: str, problem: Any) -> None:
    if value in seen:
        problem(name, f"{name} {value!r} is already used by {seen[value]} of this collection")
    else:
        seen[value] = prefix


def _binary(snap: Snapshot, cache: ParseCache, image: FirmwareImage, problem: Any) -> None:
    found = snap.binary(image.path)
    if isinstance(found, str):
        problem("path", found)
        return
    digest, length = cache.get("binary", found.key, lambda: snap.read(found))
    if length != image.length:
        problem("length", f"declared {image.length} bytes but {image.path} has {length}")
    if digest != image.sha256:
        problem("sha256", f"does not match {image.path}, whose sha256 is {digest}")
