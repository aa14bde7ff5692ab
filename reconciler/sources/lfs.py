"""Git LFS: firmware images whose file in git is an LFS pointer.

A repository that keeps `images/**` in Git LFS commits a small pointer text instead of
the binary (`version https://git-lfs.github.com/spec/v1`, `oid sha256:<hex>`, `size <n>`).
`pointer()` recognises one; validation then compares the pointer's oid and size with the
manifest (the binary itself is not needed for that), and `read_object()` gets the bytes
from the LFS store through `git lfs smudge`, which uses the local store and fetches from
the LFS remote when the object is missing. The caller checks the sha256 as for any image.
Used by `reconciler.sources.parsing` (validation) and `reconciler.sources.image_reader`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_SPEC = b"version https://git-lfs.github.com/spec/v1\n"
_MAX_POINTER = 1024  # the spec: a pointer file is smaller than 1024 bytes
_FIELDS = re.compile(rb"^oid sha256:([0-9a-f]{64})\nsize (\d+)\n", re.MULTILINE)
FETCH_SECONDS = 600.0  # a slow LFS remote must not hold a device's reconcile for ever


class LfsError(FileNotFoundError):
    """An LFS pointer whose object cannot be read (so the image cannot be served); the
    message says why."""


@dataclass(frozen=True, slots=True)
class Pointer:
    oid: str  # sha256 hex of the real content
    size: int
    text: bytes  # the pointer file as committed


def pointer(data: bytes) -> Pointer | None:
    """The LFS pointer `data` is, or None for any other content."""
    if len(data) >= _MAX_POINTER or not data.startswith(_SPEC):
        return None
    found = _FIELDS.search(data, len(_SPEC))
    if found is None:
        return None
    return Pointer(found.group(1).decode(), int(found.group(2)), data)


def read_object(found: Pointer, path: str, repo_dir: Path) -> bytes:
    """The content `found` points at, from the LFS store of the repository at `repo_dir`
    (a work tree or a bare repository). Raises LfsError when git-lfs is missing or the
    object cannot be had."""
    if shutil.which("git-lfs") is None:
        raise LfsError(f"{path} is stored in Git LFS, but git-lfs is not installed here: "
                       "install it (apt install git-lfs, or see git-lfs.com)")
    try:
        done = subprocess.run(["git", "lfs", "smudge", "--", path], input=found.text,
                              cwd=repo_dir, capture_output=True, timeout=FETCH_SECONDS,
                              check=False)
    except subprocess.TimeoutExpired:
        raise LfsError(f"{path}: git lfs took over {FETCH_SECONDS:g}s") from None
    if done.returncode != 0 or len(done.stdout) != found.size:
        why = done.stderr.decode(errors="replace").strip().splitlines()
        detail = why[-1] if why else f"got {len(done.stdout)} of {found.size} bytes"
        raise LfsError(f"{path}: Git LFS object {found.oid[:12]} not available ({detail})")
    return done.stdout
