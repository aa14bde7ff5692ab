"""What a proposed desired state does to the fleet as last observed: pure summarising.

`summarize(desired, observed)` gives, per collection, how many devices move from which
version to which, how many already run their target, and which are blocked and why;
`render` prints it. Called by `review.cmd` (`fota plan`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.model.desired import DesiredState, Device, Management
from reconciler.model.status import UpdateState
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
