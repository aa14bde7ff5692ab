"""`fota plan [--repo DIR] [--against URL|STATE_FILE] [--base REV [--head REV]]
[--format text|json|markdown] [--exit-code]`: what a desired-state change would do.

Loads the working tree's desired state (as a pull request checks it out), reads what a
running reconciler last saw (its state file or its API, `review.observed`) and prints
`review.summary`'s verdict per collection. With `--base`, both states come from git
objects and `review.change` separates what the change does from the drift.
`--exit-code` (as terraform's -detailed-exitcode): 2 when devices move, 0 when none,
1 on error. Wired into `fota` by `reconciler.cli`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from reconciler.errors import ManifestError
from reconciler.model.desired import DesiredState
from reconciler.review import observed as plan_observed
from reconciler.review.change import Change, render_markdown, review_change
from reconciler.review.summary import CollectionPlan, render, summarize
from reconciler.sources import load_tree
from reconciler.sources.tree import load_revision
from reconciler.store import DeviceView


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", type=Path, default=Path("."),
                        help="repository working tree with the proposed desired state")
    parser.add_argument("--against", default=None, metavar="URL|STATE_FILE",
                        help="a running reconciler: its API URL (token from FOTA_API_TOKEN) "
                             "or its state file (default .fota/state.db under --repo, "
                             "when present)")
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text",
                        help="markdown: a pull-request comment (with --base)")
    parser.add_argument("--base", default=None, metavar="REV",
                        help="review a change: the desired state committed at REV (the pull "
                             "request's base) against --head, both read from git")
    parser.add_argument("--head", default="HEAD", metavar="REV",
                        help="with --base: the proposed revision (default: HEAD)")
    parser.add_argument("--exit-code", action="store_true",
                        help="exit 2 when devices would move, 0 when none, 1 on error")


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
    failed = 1 if args.exit_code else 2
    try:
        base = load_revision(args.repo, args.base) if args.base is not None else None
        head = load_revision(args.repo, args.head) if base is not None else load_tree(args.repo)
    except ManifestError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"fota plan: {exc}", file=sys.stderr)
        return failed
    try:
        observed = _observed(head, args)
    except (OSError, ValueError) as exc:  # urllib's errors are OSErrors
        print(f"fota plan: {exc}", file=sys.stderr)
        return failed
    if base is None:
        plans = summarize(head, observed, time.time())
        moves = any(p.moves for p in plans)
        _print_fleet(plans, args.format)
    else:
        change = review_change(base, head, observed, time.time())
        moves = change.moves > 0
        _print_change(change, args.format)
    return 2 if args.exit_code and moves else 0


def _print_fleet(plans: list[CollectionPlan], form: str) -> None:
    if form == "json":
        print(json.dumps([p.as_json() for p in plans], indent=2))
    else:  # markdown without --base: the fleet's plan reads the same as text
        print(render(plans))


def _print_change(change: Change, form: str) -> None:
    if form == "json":
        print(json.dumps(change.as_json(), indent=2))
    elif form == "markdown":
        print(render_markdown(change), end="")
    else:
        print(f"change {change.base[:12]} -> {change.head[:12]}:")
        print(*change.warnings, sep="\n", end="\n" if change.warnings else "")
        print(render(change.plans) or "no device of this change")
        if change.drift:
            print("already drifting regardless of this change:")
            print(render(change.drift))
