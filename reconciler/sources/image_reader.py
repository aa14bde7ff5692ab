"""Firmware bytes for the controller's CoAP server, read from the applied commit.

`ImageReader` has its own gitpython `Repo` (its own `git cat-file` process) and lock, so
serving an image never waits for a long `sync()` holding the source's lock, and keeps the
last few images in memory because a rollout serves the same image to many devices. An
image committed as a Git LFS pointer is read from the LFS store (`lfs.read_object`).
Used by `reconciler.sources.git_source.GitSource.image_bytes`.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.model.desired import FirmwareImage
from reconciler.sources import lfs
from reconciler.sources.snapshot import CommitSnapshot

_KEEP = 4


class ImageReader:
    def __init__(self, open_repo: Callable[[], Any]) -> None:
        self._open_repo = open_repo
        self._repo: Any = None
        self._lock = threading.Lock()
        self._recent: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()

    def read(self, revision: str, image: FirmwareImage) -> bytes:
        """The binary `image.path` names at `revision`, checked against its sha256 so a
        device is never offered other bytes than the manifest declares."""
        key = (revision, image.path, image.sha256)
        with self._lock:
            data = self._recent.get(key)
            if data is None:
                data = self._load(revision, image.path)
                if hashlib.sha256(data).hexdigest() != image.sha256:
                    where = f"{image.path} at {revision[:12]}"
                    raise FileNotFoundError(f"{where} is not image {image.image_id}")
                self._recent[key] = data  # checked once: a rollout offers it many times
                while len(self._recent) > _KEEP:
                    self._recent.popitem(last=False)
            self._recent.move_to_end(key)
        return data

    def close(self) -> None:
        with self._lock:
            if self._repo is not None:
                self._repo.close()
                self._repo = None
            self._recent.clear()

    def _load(self, revision: str, path: str) -> bytes:
        if self._repo is None:
            self._repo = self._open_repo()
        snap = CommitSnapshot(self._repo.commit(revision))
        found = snap.binary(path)
        if isinstance(found, str):
            raise FileNotFoundError(found)
        data = snap.read(found)
        pointer = lfs.pointer(data)
        if pointer is None:
            return data
        where = self._repo.working_tree_dir or self._repo.git_dir  # a bare cache clone too
        return lfs.read_object(pointer, path, Path(where))
