"""`fota plan [--repo DIR] [--against URL|STATE_FILE]`: what a desired-state change would do.

Loads the working tree's desired state (as a pull request checks it out), reads what a
running reconciler last saw (its state file or its API, `review.observed`) and prints
`review.summary`'s verdict per collection. Wired into `fota` by `reconciler.cli`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from reconciler.errors import ManifestError
from reconciler.model.desired import DesiredState
from reconciler.review import observed as plan_observed
from reconciler.review.summary import render, summarize
from reconciler.sources import load_tree
from reconciler.store import DeviceView


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", type=Path, default=Path("."),
                        help="repository working tree with the proposed desired state")
    parser.add_argument("--against", default=None, metavar="URL|STATE_FILE",
                        help="a running reconciler: its API URL (token from FOTA_API_TOKEN) "
                             "or its state file (default .fota/state.db under --repo, "
                             "when present)")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def _observed(desired: DesiredState, args: argparse.Namespace) -> dict[str, DeviceView]:
    against: str | None = args.against
    if against is not None and against.startswith(("http://", "https://")):
        return plan_observed.from_api(desired, against, os.environ.get("FOTA_API_TOKEN"))
    state = Path(against) if against is not None else args.repo / ".fota" / "state.db"
    if not state.exists():
        if against is not None:
            raise FileNotFoundError(f"no state file at {against}")
        return {}
    return plan_observed.from_state(desired, state)


def run(args: argparse.Namespace) -> int:
    try:
        desired = load_tree(args.repo)
    except ManifestError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 1
    try:
        observed = _observed(desired, args)
    except (OSError, ValueError) as exc:  # urllib's errors are OSErrors
        print(f"fota plan: {exc}", file=sys.stderr)
        return 2
    plans = summarize(desired, observed)
    if args.format == "json":
        print(json.dumps([p.as_json() for p in plans], indent=2))
    else:
        print(render(plans))
    return 0
