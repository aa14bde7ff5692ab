"""Opening the repository a `GitSource` follows: a local path as it is, a URL as a mirror
clone under the cache directory that every poll fetches into.

Only refs and objects are used; nothing here touches a working tree. Called by
`reconciler.sources.git_source` (from a worker thread, under its lock).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import git

DEFAULT_BRANCH = "main"
# scp-like "user@host:path" as well as scheme://
_URL = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*://|[^/\s]+@[^/\s]+:)")


def is_url(repo: str) -> bool:
    return bool(_URL.match(repo))


class RepoHandle:
    """A gitpython `Repo` for `location`, refreshed by `update()` before each read."""

    def __init__(self, location: str, cache_dir: Path) -> None:
        self.location = location
        self.remote = is_url(location)
        self._mirror = cache_dir / "mirrors" / (_digest(location) + ".git")
        self._repo: Any = None

    @property
    def local_git_dir(self) -> Path | None:
        """The git directory to watch for new commits (local repositories only)."""
        if self.remote:
            return None
        return Path(self.open().git_dir)

    def open(self) -> Any:
        if self._repo is None:
            self._repo = self._clone() if self.remote else git.Repo(self.location)
        return self._repo

    def open_reader(self) -> Any:
        """A second `Repo` on the same objects, for readers on other threads."""
        repo = self.open()
        return git.Repo(repo.working_tree_dir or repo.git_dir)

    def update(self) -> None:
        """Fetch new commits of a remote; a local repository is read as it is."""
        repo = self.open()
        if self.remote:
            repo.git.fetch("--prune", "origin")

    def default_branch(self) -> str:
        """The branch followed when none is named: the remote's default branch for a URL
        (where the mirror clone's HEAD points), else `main`. Never a working tree's HEAD,
        which a checkout moves."""
        if not self.remote:
            return DEFAULT_BRANCH
        ref = str(self.open().git.symbolic_ref("HEAD"))
        return ref.removeprefix("refs/heads/")

    def head(self, branch: str) -> Any:
        """The commit `branch` points to now; ValueError when there is no such branch
        (gitdb's BadName is no GitError, so callers would not see it as one)."""
        repo = self.open()
        try:
            return repo.commit(f"refs/heads/{branch}")
        except git.BadName:
            raise ValueError(f"branch {branch!r} not found in {self.location}") from None

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
            self._repo = None

    def _clone(self) -> Any:
        if (self._mirror / "HEAD").exists():
            return git.Repo(self._mirror)
        self._mirror.parent.mkdir(parents=True, exist_ok=True)
        return git.Repo.clone_from(self.location, self._mirror, mirror=True)


def _digest(location: str) -> str:
    return hashlib.sha256(location.encode()).hexdigest()[:20]
