"""`fota validate [REPO_DIR] [--format text|github] [--credentials FILE]`: check a
desired-state repository.

Prints every problem at once, one per line (`path:line: field.path: message`, or GitHub
workflow annotations with `--format github`), and exits 1 on any problem, 0 when the
repository is valid; warnings (`wave_checks`) are printed too and never fail it. Reads
the directory as it is on disk, committed or not. With `--credentials` (or
`FOTA_CREDENTIALS`) it also checks the credentials file and that every endpoint that
requires PSK has a credential (`credential_checks`), printing no key.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from reconciler.model.desired import DesiredState, SecurityMode
from reconciler.security.credentials import CredentialsError, credentials_path, load_credentials
from reconciler.sources.credential_checks import missing_credentials
from reconciler.sources.parsing import ParseCache
from reconciler.sources.problems import Problem
from reconciler.sources.tree import check_tree
from reconciler.sources.wave_checks import wave_warnings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("repo", nargs="?", default=".", type=Path, metavar="REPO_DIR",
                        help="repository root holding manifests/ and images/ (default: .)")
    parser.add_argument("--format", choices=("text", "github"), default="text",
                        help="github: ::error annotations for GitHub Actions")
    parser.add_argument("--credentials", type=Path, metavar="FILE",
                        help="also check this PSK credentials file against the endpoints "
                             "that require PSK (default: FOTA_CREDENTIALS, if set)")
    parser.add_argument("--security-default", choices=("psk", "none"),
                        help="as fota serve's: what endpoints whose manifests say no "
                             "`security` require (default: FOTA_SECURITY_DEFAULT, else none)")


def run(args: argparse.Namespace) -> int:
    default = args.security_default or os.environ.get("FOTA_SECURITY_DEFAULT") or "none"
    if default not in ("psk", "none"):
        print(f"fota validate: FOTA_SECURITY_DEFAULT must be psk or none, got {default!r}",
              file=sys.stderr)
        return 2
    args.security_default = default
    root: Path = args.repo
    cache = ParseCache()
    state, problems = check_tree(root, cache=cache)
    if state is not None:
        problems = _credential_problems(root, state, args, cache)
    for problem in problems:
        print(problem.github() if args.format == "github" else str(problem))
    if state is None or problems:
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


def _credential_problems(root: Path, state: DesiredState, args: argparse.Namespace,
                         cache: ParseCache) -> list[Problem]:
    path = credentials_path(args.credentials)
    if path is None:
        return []
    try:
        credentials = load_credentials(path)
    except CredentialsError as exc:
        return [Problem(p.file, p.line, p.field, p.message) for p in exc.problems]
    return missing_credentials(root, state, credentials, SecurityMode(args.security_default),
                               cache)
