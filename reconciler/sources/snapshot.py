"""What the loader reads: the files of one revision, from a git commit or a directory.

`CommitSnapshot` reads a commit's tree from git's object database through gitpython (the
working tree is never consulted); `DirectorySnapshot` reads a directory for `fota
validate`. Both list `manifests/`, read blobs and resolve an image's path, following
symlinks only while they stay inside the repository. Used by `reconciler.sources.assemble`.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from reconciler.sources.parsing import MAX_MANIFEST_BYTES, blob_sha

MANIFESTS = "manifests"
_SYMLINK_MODE = 0o120000
_MAX_HOPS = 16


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str  # repo-relative, "/"-separated
    key: str  # git blob sha (content identity)
    size: int
    symlink: bool = False
    handle: Any = None  # gitpython Blob or filesystem Path


class Snapshot(Protocol):
    revision: str

    def manifest_files(self) -> list[FileEntry]: ...

    def read(self, entry: FileEntry) -> bytes: ...

    def binary(self, path: str) -> FileEntry | str:
        """The regular file `path` names, or why it cannot be used."""
        ...


def path_problem(path: str) -> str | None:
    """Why `path` is not a plain repo-relative path, before anything is resolved."""
    if path.startswith("/") or "\\" in path or (len(path) > 1 and path[1] == ":"):
        return "must be a path relative to the repository root, like images/fw.bin"
    parts = path.split("/")
    if ".." in parts:
        return "must not contain '..'"
    if any(part in ("", ".") for part in parts):
        return "must be a plain relative path, like images/fw.bin"
    return None


class CommitSnapshot:
    """The files of one commit (a gitpython `Commit`)."""

    def __init__(self, commit: Any) -> None:
        self.commit = commit
        self.revision: str = commit.hexsha
        self._files: list[FileEntry] | None = None

    def manifest_files(self) -> list[FileEntry]:
        # Listed once: the source's prefetch and the assembler both ask.
        if self._files is None:
            self._files = self._listed()
        return list(self._files)

    def _listed(self) -> list[FileEntry]:
        try:
            top = self.commit.tree / MANIFESTS
        except KeyError:
            return []
        if top.type != "tree":
            return []
        return [_entry(item) for item in top.traverse() if item.type == "blob"]

    def read(self, entry: FileEntry) -> bytes:
        data: bytes = entry.handle.data_stream.read()
        return data

    def binary(self, path: str) -> FileEntry | str:
        problem = path_problem(path)
        return problem if problem is not None else self._resolve(path, 0)

    def _resolve(self, path: str, hops: int) -> FileEntry | str:
        node = self.commit.tree
        parts = path.split("/")
        for index, name in enumerate(parts):
            child = _child(node, name)
            if child is None:
                return f"{path} does not exist in revision {self.revision[:12]}"
            if child.type == "blob" and child.mode == _SYMLINK_MODE:
                link = child.data_stream.read().decode("utf-8", "replace")
                rest = parts[index + 1 :]
                target = posixpath.normpath(posixpath.join(*parts[:index], link, *rest))
                if link.startswith("/") or target == ".." or target.startswith("../"):
                    return f"{path} leaves the repository (symlink to {link})"
                if hops >= _MAX_HOPS:
                    return f"{path}: too many levels of symlinks"
                return self._resolve(target, hops + 1)
            node = child
        if node.type != "blob":
            return f"{path} is not a file"
        return _entry(node)


def _child(tree: Any, name: str) -> Any:
    if tree.type != "tree":
        return None
    try:
        return tree / name
    except KeyError:
        return None


def _entry(blob: Any) -> FileEntry:
    symlink = blob.mode == _SYMLINK_MODE
    return FileEntry(blob.path, blob.hexsha, blob.size, symlink, blob)


class DirectorySnapshot:
    """A directory on disk (a working tree, uncommitted changes included)."""

    def __init__(self, root: Path, revision: str = "worktree") -> None:
        self.root = root
        self.real_root = root.resolve()
        self.revision = revision

    def manifest_files(self) -> list[FileEntry]:
        found: list[FileEntry] = []
        for folder, dirs, files in os.walk(self.root / MANIFESTS):
            dirs.sort()
            for name in sorted(files) + [d for d in dirs if Path(folder, d).is_symlink()]:
                found.append(self._file(Path(folder, name)))
        return found

    def read(self, entry: FileEntry) -> bytes:
        data: bytes = entry.handle.read_bytes()
        return data

    def binary(self, path: str) -> FileEntry | str:
        problem = path_problem(path)
        if problem is not None:
            return problem
        full = self.root / path
        if not full.exists():
            dangling = full.is_symlink()
            return f"{path} is a dangling symlink" if dangling else f"{path} does not exist"
        real = full.resolve()
        if not real.is_relative_to(self.real_root):
            return f"{path} leaves the repository (resolves to {real})"
        if not real.is_file():
            return f"{path} is not a file"
        stat = real.stat()
        # Content identity for the in-memory cache; a directory is validated once.
        key = f"{real}:{stat.st_mtime_ns}:{stat.st_size}"
        return FileEntry(path, key, stat.st_size, False, real)

    def _file(self, full: Path) -> FileEntry:
        path = full.relative_to(self.root).as_posix()
        if full.is_symlink():
            return FileEntry(path, "", 0, True, full)
        size = full.stat().st_size
        # Oversized files are refused by size alone, never read.
        key = blob_sha(full.read_bytes()) if size <= MAX_MANIFEST_BYTES else ""
        return FileEntry(path, key, size, False, full)
