"""`fota plan [--repo DIR] [--against URL|STATE_FILE]`: what a desired-state change would do.

Loads the working tree's desired state (as a pull request checks it out) and compares it
with what a running reconciler last saw (its state file or its API, `review.observed`):
per collection, how many devices move from which image to which, how many already run
their target, and which are blocked and why. Pure summarising in `summarize`; wired
into `fota` by `reconciler.cli`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import ManifestError
from reconciler.model.desired import DesiredState, Device, Management
from reconciler.model.status import UpdateState
from reconciler.review import observed as plan_observed
from reconciler.sources import load_tree
from reconciler.store import DeviceView

UNREPORTED = "unreported"


@dataclass
class CollectionPlan:
    collection_id: str
    name: str
    management: str
    target: str | None
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    current: int = 0
    blocked: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, object]:
        return {
            "collectionId": self.collection_id, "name": self.name,
            "management": self.management, "target": self.target,
            "moves": [{"from": a, "to": b, "devices": n}
                      for (a, b), n in sorted(self.moves.items())],
            "current": self.current,
            "blocked": [{"reason": r, "devices": n} for r, n in sorted(self.blocked.items())],
        }


def _label(desired: DesiredState, device: Device, view: DeviceView | None) -> str:
    if view is None or view.firmware_version is None:
        return UNREPORTED
    image = desired.image_by_version(device.collection_id, view.firmware_version)
    return image.version if image else f"{view.firmware_version.strip()} (unknown image)"


def _blocked(desired: DesiredState, device: Device, view: DeviceView | None) -> str | None:
    collection = desired.collections.get(device.collection_id)
    if collection is None or collection.management is Management.DISABLED:
        return "firmware management disabled"
    target = desired.effective_target(device)
    if target is None:
        return "no target firmware"
    terminal = {UpdateState.UPDATE_FAILED.value, UpdateState.REVERTED.value}
    if view is not None and view.state in terminal and view.target_image_id == target:
        return f"{view.state} holds until the target changes"
    if collection.rollout.paused:
        return "rollout paused"
    return None


def summarize(desired: DesiredState, observed: Mapping[str, DeviceView]) -> list[CollectionPlan]:
    plans = {cid: CollectionPlan(cid, c.name, c.management.value,
                                 _version(desired, c.target_image_id))
             for cid, c in sorted(desired.collections.items())}
    for device in desired.devices.values():
        entry = plans.get(device.collection_id)
        if entry is None:
            continue
        view = observed.get(device.device_id)
        target = _version(desired, desired.effective_target(device))
        current = _label(desired, device, view)
        reason = _blocked(desired, device, view)
        if target is not None and current == target:
            entry.current += 1
        elif reason is not None:
            entry.blocked[reason] += 1
        elif target is not None:
            entry.moves[(current, target)] += 1
    return list(plans.values())


def _version(desired: DesiredState, image_id: str | None) -> str | None:
    image = desired.images.get(image_id) if image_id else None
    return image.version if image else None


def render(plans: list[CollectionPlan]) -> str:
    lines = []
    for p in plans:
        name = f" ({p.name})" if p.name else ""
        lines.append(f"collection {p.collection_id}{name}: management {p.management}, "
                     f"target {p.target or '-'}")
        for (old, new), count in sorted(p.moves.items()):
            lines.append(f"  {count} device{'s' * (count != 1)} move {old} -> {new}")
        lines.append(f"  {p.current} already on target")
        for reason, count in sorted(p.blocked.items()):
            lines.append(f"  {count} blocked: {reason}")
    return "\n".join(lines)


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
