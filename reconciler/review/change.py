"""`fota plan --base REV`: what one change (base -> head) does, apart from the drift.

`review_change` splits the head's devices into those the change affects (the engine's
own test, `revision_affects`: record, effective target, management or rollout changed)
and the rest; the first are summarised against the head, the rest against the base, so
moves there are drift that happens regardless of the change. `render_markdown` writes a
pull-request comment: a summary line, warnings first, a table per collection. Called by
`review.cmd`.
"""

from __future__ import annotations

from collections.abc import Collection as Ids
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.model.desired import DesiredState, revision_affects
from reconciler.review.summary import CollectionPlan, drift_lines, summarize
from reconciler.store import DeviceView


@dataclass(frozen=True)
class Change:
    base: str
    head: str
    plans: list[CollectionPlan]  # the devices this change affects, under the head
    drift: list[CollectionPlan]  # the others, under the base: they move regardless
    warnings: list[str]

    @property
    def moves(self) -> int:
        return sum(sum(p.moves.values()) for p in self.plans)

    def as_json(self) -> dict[str, object]:
        return {"base": self.base, "head": self.head, "warnings": self.warnings,
                "change": [p.as_json() for p in self.plans],
                "drift": [p.as_json() for p in self.drift]}


def review_change(base: DesiredState, head: DesiredState,
                  observed: Mapping[str, DeviceView], now: float | None = None) -> Change:
    """`now`: when the windows' next openings are told from (None: not told)."""
    changed = {d for d in head.devices if revision_affects(base, head, d)}
    unchanged = set(base.devices) - changed
    plans = [p for p in summarize(_only(head, changed), observed, now, _retried(base, head))
             if _counts(p)]
    drift = [p for p in summarize(_only(base, unchanged), observed) if p.moves or p.drifted]
    return Change(base.revision, head.revision, plans, drift, _warnings(head, plans))


def _retried(base: DesiredState, head: DesiredState) -> set[str]:
    """Devices whose retry counter the change raises: a failed one is retried."""
    return {d for d, device in head.devices.items()
            if d in base.devices and head.retry_of(device) > base.retry_of(base.devices[d])}


def _only(state: DesiredState, ids: Ids[str]) -> DesiredState:
    devices = {i: d for i, d in state.devices.items() if i in ids}
    return DesiredState(state.revision, state.collections, state.images, devices)


def _counts(plan: CollectionPlan) -> int:
    return sum(plan.moves.values()) + plan.current + sum(plan.blocked.values())


def _warnings(head: DesiredState, plans: list[CollectionPlan]) -> list[str]:
    found = []
    for plan in plans:
        moving = sum(plan.moves.values())
        rollout = head.collections[plan.collection_id].rollout
        if not moving or rollout.failure_threshold is not None:
            continue
        total = sum(1 for d in head.devices.values() if d.collection_id == plan.collection_id)
        found.append(f"this change targets {100 * moving / total:.0f} % of {total:,} devices "
                     f"of collection {plan.collection_id} with no failureThreshold")
    return found


def render_markdown(change: Change) -> str:
    count = change.moves
    collections = sum(1 for p in change.plans if p.moves)
    lines = [f"### fota plan: `{change.base[:12]}` → `{change.head[:12]}`", ""]
    lines.append(f"**This change moves {count} device{'s' * (count != 1)} in "
                 f"{collections} collection{'s' * (collections != 1)}.**" if count
                 else "**This change moves no devices.**")
    lines += [""] + [f"> ⚠️ {w}" for w in change.warnings] + [""] * bool(change.warnings)
    for plan in change.plans:
        lines += _table(plan)
    if change.drift:
        drifting = sum(sum(p.moves.values()) for p in change.drift)
        lines += [f"<details><summary>Already drifting regardless of this change: "
                  f"{drifting} device{'s' * (drifting != 1)}</summary>", ""]
        for plan in change.drift:
            lines += _table(plan)
        lines += ["</details>", ""]
    return "\n".join(lines).rstrip() + "\n"


def _table(plan: CollectionPlan) -> list[str]:
    name = f" ({plan.name})" if plan.name else ""
    lines = [f"#### collection `{plan.collection_id}`{name}: target {plan.target or '-'}", ""]
    if plan.moves:
        lines += ["| from | to | devices |", "| --- | --- | ---: |"]
        lines += [f"| {a} | {b} | {n} |" for (a, b), n in sorted(plan.moves.items())]
        lines.append("")
    notes = [f"{plan.current} already on target"]
    if plan.waiting:
        notes.append(f"{plan.waiting} wait for a slot (maxConcurrent {plan.max_concurrent})")
    notes += [f"{n} blocked: {reason}" for reason, n in sorted(plan.blocked.items())]
    notes += [line.strip() for line in drift_lines(plan)]
    notes += [f"window {w}" for w in plan.windows]
    if plan.waves:
        notes.append(plan.waves_line())
    return [*lines, "; ".join(notes), ""]
