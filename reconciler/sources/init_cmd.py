"""`fota init DIR [--collection NAME]`: start a new desired-state repository.

Writes `scaffold.files()` into DIR (new or empty), makes it a git repository on branch
`main` and commits, so `fota validate DIR` passes and `fota serve --repo DIR` has a
revision to run at once. Exit 0 on success, 2 when DIR holds files already or NAME is
not a usable directory name. Wired into `fota` by `reconciler.cli`.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from reconciler.sources import scaffold

# A collection directory name: its id is derived from it, and it appears in paths.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, metavar="DIR",
                        help="where the repository is created (new or empty)")
    parser.add_argument("--collection", default="fleet", metavar="NAME",
                        help="directory name of the first collection (default: fleet)")


def run(args: argparse.Namespace) -> int:
    root: Path = args.directory
    if not _NAME.match(args.collection):
        return _refuse(f"--collection {args.collection!r}: use letters, digits, '.', '_' "
                       "or '-' (up to 64)")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        return _refuse(f"{root} exists and is not an empty directory")
    written = _write(root, scaffold.files(args.collection))
    _commit(root, written)
    print(f"fota init: new desired-state repository in {root} (collection "
          f"{args.collection!r}); see {root / 'README.md'} for the next steps",
          file=sys.stderr)
    return 0


def _refuse(message: str) -> int:
    print(f"fota init: {message}", file=sys.stderr)
    return 2


def _write(root: Path, files: dict[str, str]) -> list[str]:
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return sorted(files)


def _commit(root: Path, paths: list[str]) -> None:
    import git  # gitpython: loaded only by the commands that need it

    repo = git.Repo.init(root, initial_branch="main")
    try:
        repo.index.add(paths)
        repo.index.commit("fota init: an empty desired state")
    finally:
        repo.close()
