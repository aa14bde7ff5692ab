"""Per-file parsing and the parse cache keyed by git blob sha.

Each manifest file is parsed on its own into plain data (no cross-file knowledge), so
the result depends only on the file's bytes and can be cached under its blob sha: in
memory across revisions, and on disk (`cachefile`: marshal in pieces, one file per
blob) across restarts.
`ParseCache.parse_count` and `round_parsed` count real parses, which is how tests and the
benchmark see that an incremental reload parsed only the changed blob.
Used by `reconciler.sources.assemble`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reconciler.sources import lfs
from reconciler.sources.cachefile import seal, unseal
from reconciler.sources.devicelist import DeviceRows, parse_devices
from reconciler.sources.problems import LocalProblem, by_line
from reconciler.sources.schema import (
    CollectionDoc,
    ImageEntry,
    ImagesDoc,
    salvaged,
    schema_problems,
)
from reconciler.sources.yamlload import read_yaml

MAX_MANIFEST_BYTES = 32 * 1024 * 1024
_FORMAT = 12  # bump when any cached shape or meaning changes; old files are then ignored
# A truncated collection.yaml would otherwise load as management `disabled` under a
# derived id: the fleet would silently stop being managed.
_EMPTY_COLLECTION = (
    "collection manifest is empty (truncated?); it would silently stop managing the "
    "collection: write `firmware: {management: disabled}` if that is meant"
)


@dataclass
class ParsedDoc:
    """A small manifest (collection.yaml, images.yaml): plain values, lines, problems."""

    value: Any = None  # collection: dict; images: {"entries": [(index, dict)], "broken": [..]}
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[LocalProblem] = field(default_factory=list)
    written: dict[str, str] = field(default_factory=dict)  # for messages only: not cached

    def line_of(self, path: str) -> int:
        while path not in self.lines and path:
            cut = max(path.rfind("."), path.rfind("["))
            path = path[: max(cut, 0)]
        return self.lines.get(path, 1)

    def to_wire(self) -> tuple[Any, ...]:
        return (self.value, self.lines, self.problems)

    @classmethod
    def from_wire(cls, wire: tuple[Any, ...]) -> ParsedDoc:
        return cls(wire[0], wire[1], [tuple(p) for p in wire[2]])


def blob_sha(data: bytes) -> str:
    """The git blob id of `data`, so a working tree shares keys with commits."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def parse_collection(text: str) -> ParsedDoc:
    doc = _read(text)
    if not doc.value and not doc.problems:
        doc.problems.append((1, "", _EMPTY_COLLECTION))
    if doc.value is not None:  # after a duplicate key too: every problem in one run
        # What the schema refused is reported; the rest still meets the cross-file rules
        # (its target against the images), so one CI round shows every problem.
        model = _validated(CollectionDoc.model_validate, doc.value, "", doc, salvage=True)
        doc.value = model.model_dump() if model is not None else None
    doc.problems.sort(key=by_line)
    return doc


def parse_images(text: str) -> ParsedDoc:
    doc = _read(text)
    _validated(ImagesDoc.model_validate, doc.value or {}, "", doc)
    # Entries are checked even when the top level is wrong (an unknown key beside them).
    listed = (doc.value or {}).get("images")
    entries: list[tuple[int, dict[str, Any]]] = []
    broken: list[str] = []  # version and id of invalid entries: targets naming them are
    for index, raw in enumerate(listed if isinstance(listed, list) else []):  # not errors again
        entry = _validated(ImageEntry.model_validate, raw, f"images[{index}]", doc)
        if entry is not None:
            entries.append((index, entry.model_dump()))
        elif isinstance(raw, dict):
            broken.extend(str(raw[k]) for k in ("version", "imageId") if raw.get(k) is not None)
    doc.value = {"entries": entries, "broken": broken}
    doc.problems.sort(key=by_line)
    return doc


def _read(text: str) -> ParsedDoc:
    found = read_yaml(text)
    doc = ParsedDoc(found.value, found.lines, list(found.problems), found.written)
    if doc.value is not None and not isinstance(doc.value, dict):
        doc.problems.append((doc.line_of(""), "", "expected a mapping at the top level"))
        doc.value = None
    return doc


def _validated(check: Callable[[Any], Any], value: Any, prefix: str, doc: ParsedDoc,
               *, salvage: bool = False) -> Any:
    """`check(value)`, or None with the problems recorded in `doc`; with `salvage`, the
    valid rest of a refused value instead of None (see `schema.salvaged`)."""
    try:
        return check(value)
    except ValidationError as exc:
        doc.problems.extend(schema_problems(exc, prefix, doc.line_of, doc.written))
        return salvaged(check, value, exc) if salvage else None


def decode_utf8(data: bytes) -> str | LocalProblem:
    """The text, or the problem naming the first line that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return (line, "", "not UTF-8 text")


def _parse_text(kind: str, data: bytes) -> Any:
    text = decode_utf8(data)
    if isinstance(text, tuple):
        return DeviceRows(problems=[text]) if kind == "devices" else ParsedDoc(problems=[text])
    if kind == "devices":
        return parse_devices(text)
    return parse_collection(text) if kind == "collection" else parse_images(text)


def _parse_binary(data: bytes) -> tuple[str, int]:
    """(sha256, length) of an image binary; for a Git LFS pointer, what it points at (the
    content is in the LFS store, and read and checked when the image is served)."""
    found = lfs.pointer(data)
    if found is not None:
        return found.oid, found.size
    return hashlib.sha256(data).hexdigest(), len(data)


class ParseCache:
    """blob sha -> parsed file, in memory and (when given a directory) on disk."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self.parse_count = 0  # blobs parsed from bytes since creation
        self.round_parsed: list[str] = []  # blob keys parsed in the last finished round
        self._parsed_now: list[str] = []
        self._memory: dict[tuple[str, str], Any] = {}
        self._touched: set[tuple[str, str]] = set()
        self.write_error: OSError | None = None  # the last failed write of a parse, if any
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def get(self, kind: str, key: str, read: Callable[[], bytes]) -> Any:
        """The parsed form of blob `key` read as `kind` (collection, images, devices,
        binary); `read` is only called on a miss in memory and on disk."""
        found = self._memory.get((kind, key))
        if found is None:
            found = self._from_disk(kind, key)
        if found is None:
            data = read()
            found = _parse_binary(data) if kind == "binary" else _parse_text(kind, data)
            self.parse_count += 1
            self._parsed_now.append(key)
            self._to_disk(kind, key, found)
        self._memory[(kind, key)] = found
        self._touched.add((kind, key))
        return found

    def has(self, kind: str, key: str) -> bool:
        """Whether blob `key` read as `kind` is parsed already, in memory or on disk."""
        path = self._file(kind, key)
        return (kind, key) in self._memory or (path is not None and path.is_file())

    def end_round(self) -> set[tuple[str, str]]:
        """The entries used since the last call (one load), to pass to `retain` later."""
        touched, self._touched = self._touched, set()
        self.round_parsed, self._parsed_now = self._parsed_now, []
        return touched

    def retain(self, keys: set[tuple[str, str]]) -> None:
        """Forget in-memory entries outside `keys` (the revisions still of interest)."""
        self._memory = {k: v for k, v in self._memory.items() if k in keys}

    def prune_disk(self, keys: set[tuple[str, str]], *, tmp_after: float) -> None:
        """Delete cached files outside `keys` (the applied revision's blobs), so the
        directory holds one revision's worth, not every blob ever seen; and `.tmp` files
        older than `tmp_after` seconds: a parser child killed while writing leaves one
        named by its pid, and a child lives `tmp_after` at most (a younger one may be a
        running child's)."""
        if self.directory is None:
            return
        wanted = {f"{key}.{kind}.{_FORMAT}" for kind, key in keys}
        stale_before = time.time() - tmp_after
        for path in self.directory.iterdir():
            if path.name.endswith(".tmp"):
                with contextlib.suppress(OSError):  # gone meanwhile: renamed or removed
                    if path.stat().st_mtime < stale_before:
                        path.unlink(missing_ok=True)
            elif path.name not in wanted:
                path.unlink(missing_ok=True)

    def _file(self, kind: str, key: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{key}.{kind}.{_FORMAT}"

    def _from_disk(self, kind: str, key: str) -> Any:
        path = self._file(kind, key)
        if path is None or not path.exists():
            return None
        try:
            wire = unseal(path.read_bytes())
        except (OSError, ValueError, EOFError, TypeError):
            return None  # a torn or foreign file is just a miss
        if kind == "binary":
            return tuple(wire)
        return DeviceRows.from_wire(wire) if kind == "devices" else ParsedDoc.from_wire(wire)

    def _to_disk(self, kind: str, key: str, value: Any) -> None:
        path = self._file(kind, key)
        if path is None:
            return
        wire = value if kind == "binary" else value.to_wire()
        temp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            temp.write_bytes(seal(wire))
            os.replace(temp, path)  # readers never see half a file
        except OSError as exc:
            self.write_error = exc
            temp.unlink(missing_ok=True)  # a full disk costs speed, not correctness
