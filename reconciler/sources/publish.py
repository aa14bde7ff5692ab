"""Adding a firmware image to a desired-state repository (`fota publish`).

`publish()` copies the binary under `images/<collection>/`, appends its entry to the
collection's `images.yaml` (text appended, so comments and layout stay as reviewed) and
returns the entry. Identical bytes published again are a no-op; a version that exists
with other bytes, or bytes that exist under another version, are refused before anything
is written. Called by `reconciler.sources.publish_cmd`.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from reconciler.model.ids import new_id
from reconciler.sources.parsing import ParsedDoc, decode_utf8, parse_collection, parse_images
from reconciler.sources.problems import LocalProblem, located
from reconciler.sources.schema import EMPTY_IMAGE, derive_id
from reconciler.sources.snapshot import MANIFESTS


class PublishError(Exception):
    """The image cannot be published; nothing was changed."""


class PublishConflict(PublishError):
    """The version or the bytes are already published differently."""


@dataclass
class Published:
    entry: dict[str, Any]  # the reference's image shape
    changed: list[Path] = field(default_factory=list)  # files written (empty on a no-op)


@dataclass
class _Target:
    directory: Path  # manifests/<dir>
    collection_id: str
    manifest: Path  # its images.yaml (or images.yml), existing or to be created
    images_text: str | None  # the manifest as read once (None: there is none yet)
    images: list[dict[str, Any]]


def publish(
    root: Path, image: Path, collection: str, version: str | None = None,
    tags: dict[str, str] | None = None, now_ms: int | None = None,
) -> Published:
    data = _read_image(image)
    if not data:
        raise PublishError(f"{image}: {EMPTY_IMAGE}; nothing was published")
    digest = hashlib.sha256(data).hexdigest()
    target = _find_collection(root, collection)
    if version is not None and (not version.strip() or version != version.strip()):
        raise PublishError(f"version {version!r} must be non-empty without surrounding spaces")
    existing = _existing(target, digest, version)
    if existing is not None:
        return Published(_shape(existing, target.collection_id))
    created = int(time.time() * 1000) if now_ms is None else now_ms
    binary = _binary_path(root, target, image.name, data)
    entry = {
        "imageId": new_id(created), "version": version or digest, "filename": image.name,
        "path": binary.relative_to(root).as_posix(), "sha256": digest, "length": len(data),
        "created": created, "tags": dict(tags or {}),
    }
    manifest = target.manifest
    text = _appended(target.images_text or "", entry, manifest)
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_bytes(data)
    manifest.write_text(text, encoding="utf-8")
    return Published(_shape(entry, target.collection_id), [binary, manifest])


def _read_image(image: Path) -> bytes:
    try:
        return image.read_bytes()
    except OSError as exc:
        raise PublishError(f"cannot read {image}: {exc.strerror}") from exc


def _find_collection(root: Path, wanted: str) -> _Target:
    for path in sorted((root / MANIFESTS).glob("*/collection.y*ml")):
        doc = parse_collection(_manifest_text(root, path))
        value = doc.value or {}
        directory = path.parent.relative_to(root).as_posix()
        cid = value.get("collectionId") or derive_id("collection", directory)
        if wanted in (cid, path.parent.name):
            # The loader takes either spelling; writing the other would make a second one.
            found = sorted(path.parent.glob("images.y*ml"))
            manifest = found[0] if found else path.parent / "images.yaml"
            text = _manifest_text(root, manifest) if found else None
            return _Target(path.parent, cid, manifest, text, _images(root, manifest, text))
    raise PublishError(f"no collection {wanted!r} under {root / MANIFESTS}/*/collection.yaml")


def _images(root: Path, manifest: Path, text: str | None) -> list[dict[str, Any]]:
    if text is None:
        return []
    doc: ParsedDoc = parse_images(text)
    if doc.problems:
        more = len(doc.problems) - 1
        also = f" (and {more} more; `fota validate` lists them)" if more else ""
        _refuse(root, manifest, doc.problems[0], also)
    return [entry for _, entry in doc.value["entries"]]


def _manifest_text(root: Path, manifest: Path) -> str:
    text = decode_utf8(manifest.read_bytes())
    if isinstance(text, tuple):
        _refuse(root, manifest, text)
    return text


def _refuse(root: Path, manifest: Path, problem: LocalProblem, also: str = "") -> NoReturn:
    # Worded as `fota validate` words it: `path:line: field: message`.
    first = located(manifest.relative_to(root).as_posix(), [problem])[0]
    raise PublishError(f"{first}{also}; fix it first, nothing was published")


def _existing(target: _Target, digest: str, version: str | None) -> dict[str, Any] | None:
    """The entry these bytes already have (publishing again is a no-op), or None; raises
    on a conflict of version or sha256."""
    for entry in target.images:
        same_bytes = entry["sha256"] == digest
        if same_bytes and version in (None, entry["version"]):
            return entry
        if same_bytes:
            raise PublishConflict(
                f"these bytes are already published as version {entry['version']!r} "
                f"(image {_id_of(entry, target.collection_id)}); one image has one version"
            )
        if version is not None and entry["version"] == version:
            raise PublishConflict(
                f"version {version!r} already exists with different bytes "
                f"(sha256 {entry['sha256']}); publish the new build under a new version"
            )
    return None


def _id_of(entry: dict[str, Any], collection_id: str) -> str:
    given: str | None = entry.get("imageId")
    return given or derive_id("image", f"{collection_id}:{entry['sha256']}")


def _shape(entry: dict[str, Any], collection_id: str) -> dict[str, Any]:
    return {
        "imageId": _id_of(entry, collection_id),
        "version": entry["version"],
        "filename": entry.get("filename") or Path(entry["path"]).name,
        "sha256": entry["sha256"],
        "length": entry["length"],
        "collectionId": collection_id,
        "created": entry["created"],
        "tags": dict(entry.get("tags") or {}),
    }


def _binary_path(root: Path, target: _Target, name: str, data: bytes) -> Path:
    folder = root / "images" / target.directory.name
    plain = folder / name
    if not plain.exists() or plain.read_bytes() == data:
        return plain
    # CI tends to build the same file name every time: keep each build's bytes apart.
    return folder / f"{hashlib.sha256(data).hexdigest()[:12]}-{name}"


def _appended(text: str, entry: dict[str, Any], manifest: Path) -> str:
    """images.yaml's `text` with `entry` appended in the file's own indentation."""
    found = re.search(r"^( *)- ", text, flags=re.MULTILINE)
    if not re.search(r"^images:\s*(#.*)?$", text, flags=re.MULTILINE) or found is None:
        text = re.sub(r"^images:.*$", "", text, flags=re.MULTILINE).rstrip("\n")
        text = (text + "\n" if text else "") + "images:\n"
        indent = "  "
    else:
        indent = found.group(1)
    if not text.endswith("\n"):
        text += "\n"
    lines = [f"{indent}- imageId: {entry['imageId']}"]
    for key in ("version", "filename", "path", "sha256", "length", "created", "tags"):
        lines.append(f"{indent}  {key}: {json.dumps(entry[key])}")
    new_text = text + "\n".join(lines) + "\n"
    _check(new_text, entry, manifest)
    return new_text


def _check(text: str, entry: dict[str, Any], manifest: Path) -> None:
    doc = parse_images(text)
    entries = doc.value["entries"]
    if doc.problems or not any(e["sha256"] == entry["sha256"] for _, e in entries):
        raise PublishError(f"cannot append to {manifest} automatically; add the entry by hand")
