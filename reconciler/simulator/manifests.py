"""What `fota simulate` needs from a desired-state repo, read minimally and leniently.

The import rules keep `reconciler.sources` out of the simulator, and a simulated device
has no business validating manifests, so this only picks out the device endpoints
(`manifests/<collection>/devices/*.yaml`, `devices: [{endpoint: ...}]`) and the firmware
catalog (`manifests/<collection>/images.yaml`, `images: [{sha256, version, created}]`):
sha256 -> version, which is what a device checks a downloaded image against. Malformed
files raise `ManifestReadError` naming the file; `fota validate` is where details live.
`RepoCatalog` follows the repository while the fleet runs: an image published and
targeted meanwhile is found by reading the catalog again when an unknown package arrives.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
log = logging.getLogger(__name__)

# An unknown package re-reads the catalog at most this often: a fleet with integrity
# faults (packages no catalog knows) must not re-read the repository per download.
REREAD_SECONDS = 1.0


class ManifestReadError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class RepoDevice:
    endpoint: str
    collection: str


@dataclass(frozen=True, slots=True)
class RepoImage:
    collection: str
    version: str
    sha256: str
    created: int


def _entries(path: Path, key: str) -> list[dict[str, Any]]:
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ManifestReadError(f"{path}: cannot read: {exc}") from exc
    items = doc.get(key) if isinstance(doc, dict) else None
    if items is None:
        return []
    if not isinstance(items, list):
        raise ManifestReadError(f"{path}: {key}: expected a list")
    return [item for item in items if isinstance(item, dict)]


def read_devices(root: Path) -> list[RepoDevice]:
    """Every declared device endpoint, in file order."""
    found: list[RepoDevice] = []
    for path in sorted((root / "manifests").glob("*/devices/*.y*ml")):
        collection = path.parent.parent.name
        for item in _entries(path, "devices"):
            endpoint = item.get("endpoint")
            if isinstance(endpoint, str) and endpoint:
                found.append(RepoDevice(endpoint, collection))
    return found


def read_images(root: Path) -> list[RepoImage]:
    found: list[RepoImage] = []
    for path in sorted((root / "manifests").glob("*/images.y*ml")):
        collection = path.parent.name
        for item in _entries(path, "images"):
            sha, version = item.get("sha256"), item.get("version")
            if isinstance(sha, str) and version is not None:
                created = item.get("created")
                found.append(RepoImage(collection, str(version).strip(), sha.lower(),
                                       created if isinstance(created, int) else 0))
    return found


def catalog(images: list[RepoImage]) -> dict[str, str]:
    """sha256 -> version: the images a device will accept."""
    return {image.sha256: image.version for image in images}


def oldest_versions(images: list[RepoImage]) -> dict[str, str]:
    """collection -> the version of its first published image (the default start)."""
    oldest: dict[str, RepoImage] = {}
    for image in images:
        seen = oldest.get(image.collection)
        if seen is None or image.created < seen.created:
            oldest[image.collection] = image
    return {collection: image.version for collection, image in oldest.items()}


class RepoCatalog(Mapping[str, str]):
    """sha256 -> version of the repository's images, read again (at most once per
    `reread_seconds`) when asked for a package it does not know."""

    def __init__(self, root: Path, images: list[RepoImage] | None = None, *,
                 reread_seconds: float = REREAD_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._root, self._reread, self._clock = root, reread_seconds, clock
        self._known = catalog(read_images(root) if images is None else images)
        self._read_at = float("-inf")  # the first unknown package always re-reads

    def __getitem__(self, sha256: str) -> str:
        if sha256 not in self._known and self._clock() - self._read_at >= self._reread:
            self._read_at = self._clock()
            try:
                self._known = catalog(read_images(self._root))
            except ManifestReadError as exc:  # a half-written file: keep what we had
                log.warning("image catalog not re-read: %s", exc)
        return self._known[sha256]

    def __iter__(self) -> Iterator[str]:
        return iter(self._known)

    def __len__(self) -> int:
        return len(self._known)
