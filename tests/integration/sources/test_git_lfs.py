"""Images kept in Git LFS: the blob in git is a pointer; validation checks the pointer's
oid and size against the manifest, and serving reads the bytes from the LFS store (sha256
checked as always), with a clear error when the object or git-lfs itself is missing.
Runs against Debian's git-lfs (`make test` installs it when run as root)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from builders.manifests import ONE, TWO, Tree

from reconciler.cli import main
from reconciler.sources import GitSource
from reconciler.sources.lfs import LfsError, pointer, read_object

pytestmark = pytest.mark.skipif(
    shutil.which("git-lfs") is None,
    reason="git-lfs is not installed (apt install git-lfs; make test does it as root)")

BIN = "images/fleet/zephyr-1.0.0.signed.bin"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                          text=True).stdout


def _lfs_repo(root: Path) -> Path:
    """The valid tree, committed on main with images/** in Git LFS (git's own add, so
    LFS's clean filter turns each binary into a pointer)."""
    Tree(root).valid()
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.name", "test")
    _git(root, "config", "user.email", "test@example.com")
    _git(root, "lfs", "install", "--local")
    (root / ".gitattributes").write_text("images/** filter=lfs diff=lfs merge=lfs -text\n")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "desired state with images in LFS")
    return root


def _committed(root: Path, path: str) -> bytes:
    return subprocess.run(["git", "cat-file", "blob", f"HEAD:{path}"], cwd=root,
                          check=True, capture_output=True).stdout


def test_the_blob_in_git_is_a_pointer_naming_the_image(tmp_path: Path) -> None:
    root = _lfs_repo(tmp_path / "repo")
    found = pointer(_committed(root, BIN))
    assert found is not None
    assert (found.oid, found.size) == (hashlib.sha256(ONE).hexdigest(), len(ONE))
    assert pointer(ONE) is None and pointer(b"version https://git-lfs.github.com/spec/v1\n") is None


def test_a_source_on_an_lfs_repository_applies_it_and_serves_the_real_bytes(
        tmp_path: Path) -> None:
    root = _lfs_repo(tmp_path / "repo")
    source = GitSource(str(root), "main", cache_dir=tmp_path / "cache", watch=False)
    state = source.sync()
    assert state is not None, source.status.errors
    served = {i.version: source.image_bytes(i) for i in state.images.values()}
    assert served == {"1.0.0": ONE, "1.1.0": TWO}


def test_fota_validate_checks_pointers_without_the_lfs_objects(tmp_path: Path) -> None:
    root = _lfs_repo(tmp_path / "repo")
    shutil.rmtree(root / ".git" / "lfs")
    for path in (BIN, "images/fleet/zephyr-1.1.0.signed.bin"):  # as a checkout without LFS
        (root / path).write_bytes(_committed(root, path))
    assert main(["validate", str(root)]) == 0
    (root / BIN).write_bytes(_committed(root, BIN).replace(b"size ", b"size 1"))
    assert main(["validate", str(root)]) == 1


def test_a_missing_lfs_object_is_a_clear_error_when_serving(tmp_path: Path) -> None:
    root = _lfs_repo(tmp_path / "repo")
    shutil.rmtree(root / ".git" / "lfs")  # committed, never pushed, then lost
    source = GitSource(str(root), "main", cache_dir=tmp_path / "cache", watch=False)
    state = source.sync()
    assert state is not None, source.status.errors
    image = next(i for i in state.images.values() if i.version == "1.0.0")
    with pytest.raises(LfsError, match=f"{BIN}: Git LFS object [0-9a-f]{{12}} not avail"):
        source.image_bytes(image)


def test_without_git_lfs_the_error_says_to_install_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = pointer(_committed(_lfs_repo(tmp_path / "repo"), BIN))
    assert found is not None
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(LfsError, match="git-lfs is not installed here: install it"):
        read_object(found, BIN, tmp_path / "repo")


def test_publish_commit_in_an_lfs_repository_commits_a_pointer(tmp_path: Path) -> None:
    root = _lfs_repo(tmp_path / "repo")
    build = tmp_path / "app.bin"
    build.write_bytes(b"\x3d\xb8\xf3\x96" + b"zephyr 1.2.0 " * 400)
    assert main(["publish", str(build), "--collection", "1000aaaa", "--version", "1.2.0",
                 "--repo", str(root), "--commit"]) == 0
    found = pointer(_committed(root, "images/fleet/app.bin"))
    assert found is not None and found.oid == hashlib.sha256(build.read_bytes()).hexdigest()
    assert main(["validate", str(root)]) == 0
