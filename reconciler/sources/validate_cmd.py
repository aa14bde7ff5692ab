"""`fota validate [REPO_DIR] [--format text|github]`: check a desired-state repository.

Prints every problem at once, one per line (`path:line: field.path: message`, or GitHub
workflow annotations with `--format github`), and exits 1 on any problem, 0 when the
repository is valid; warnings (`wave_checks`) are printed too and never fail it. Reads
the directory as it is on disk, committed or not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reconciler.sources.tree import check_tree
from reconciler.sources.wave_checks import wave_warnings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("repo", nargs="?", default=".", type=Path, metavar="REPO_DIR",
                        help="repository root holding manifests/ and images/ (default: .)")
    parser.add_argument("--format", choices=("text", "github"), default="text",
                        help="github: ::error annotations for GitHub Actions")


def run(args: argparse.Namespace) -> int:
    root: Path = args.repo
    state, problems = check_tree(root)
    for problem in problems:
        print(problem.github() if args.format == "github" else str(problem))
    if state is None:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    for warning in wave_warnings(root, state):
        print(warning.github("warning") if args.format == "github" else
              f"{warning.file}:{warning.line}: {warning.field}: warning: {warning.message}")
    print(
        f"ok: {len(state.collections)} collection(s), {len(state.images)} image(s), "
        f"{len(state.devices)} device(s)",
        file=sys.stderr,
    )
    return 0
