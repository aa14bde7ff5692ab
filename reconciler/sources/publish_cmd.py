"""`fota publish IMAGE_FILE --collection ID [--version V] [--tag k=v ...] [--repo DIR]
[--commit]`: add a firmware image to the repository, for CI.

Prints the image as JSON in the reference API's shape. Exit 0 when published or already
published with the same bytes, 1 on a version or sha256 conflict (nothing changed),
2 on bad input. `--commit` commits exactly the two changed files with gitpython.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from reconciler.sources.publish import PublishConflict, Published, PublishError, publish


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", type=Path, metavar="IMAGE_FILE", help="the firmware binary")
    parser.add_argument("--collection", required=True, metavar="ID",
                        help="collection id (or its directory name under manifests/)")
    parser.add_argument("--version", help="version the device reports (default: sha256 hex)")
    parser.add_argument("--tag", action="append", default=[], metavar="K=V",
                        help="a tag for the image; repeat for more")
    parser.add_argument("--repo", type=Path, default=Path("."), metavar="DIR",
                        help="repository root (default: .)")
    parser.add_argument("--commit", action="store_true", help="commit the change with git")


def run(args: argparse.Namespace) -> int:
    try:
        tags = _tags(args.tag)
    except ValueError as exc:
        print(f"fota publish: {exc}", file=sys.stderr)
        return 2
    try:
        if args.commit:
            _refuse_staged(args.repo)
        result = publish(args.repo, args.image, args.collection, args.version, tags)
    except PublishError as exc:
        print(f"fota publish: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, PublishConflict) else 2
    if args.commit and result.changed:
        _commit(args.repo, result)
    if not result.changed:
        print("fota publish: already published, nothing changed", file=sys.stderr)
    try:
        print(json.dumps(result.entry, indent=2), flush=True)
    except BrokenPipeError:
        # `fota publish | head`: the reader stopped early, the image is published all
        # the same. stdout goes to /dev/null so the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _tags(pairs: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--tag {pair!r}: expected KEY=VALUE")
        tags[key] = value
    return tags


def _refuse_staged(root: Path) -> None:
    """--commit must commit the image alone, never someone's half-staged work."""
    import git

    try:
        repo = git.Repo(root)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise PublishError(f"--commit: {root} is not a git repository") from exc
    try:
        staged = repo.head.is_valid() and bool(repo.index.diff("HEAD"))
    finally:
        repo.close()
    if staged:
        raise PublishError("--commit: other changes are staged; commit or unstage them first")


def _commit(root: Path, result: Published) -> None:
    import git  # only --commit needs it

    repo = git.Repo(root)
    try:
        top = Path(repo.working_tree_dir or root).resolve()
        paths = [p.resolve().relative_to(top).as_posix() for p in result.changed]
        repo.git.add("--", *paths)  # git's own add: a Git LFS clean filter applies
        entry = result.entry
        repo.index.commit(
            f"Publish {entry['filename']} as version {entry['version']}\n\n"
            f"collection {entry['collectionId']}, image {entry['imageId']}, "
            f"sha256 {entry['sha256']}"
        )
    finally:
        repo.close()
