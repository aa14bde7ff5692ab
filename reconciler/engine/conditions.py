"""Flux-style conditions (`Ready`, `Reconciling` with a reason, `Stalled`) for one device
and one collection, each stamped with the revision it was computed against.

Pure; the controller calls these after every change of progress and persists the result
through the store for the API. A condition keeps its `last_transition` while its status
and reason hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reconciler.engine.policy import Gate
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import Condition, ConditionType, UpdateState

# state -> reason of the Reconciling condition while the update is under way
RECONCILING_REASON: dict[UpdateState, str] = {
    UpdateState.PENDING: "Waiting",
    UpdateState.INITIALIZING: "Downloading",
    UpdateState.DOWNLOADING: "Downloading",
    UpdateState.DOWNLOADED: "Updating",
    UpdateState.UPDATING: "Updating",
    UpdateState.COMPLETED: "Verifying",
    UpdateState.TIMED_OUT: "Retrying",
}


def _stamp(
    previous: Sequence[Condition], kind: ConditionType, status: bool, reason: str,
    message: str, now: float, revision: str,
) -> Condition:
    before = next((c for c in previous if c.type is kind), None)
    since = now
    if before is not None and before.status == status and before.reason == reason:
        since = before.last_transition
    return Condition(kind, status, reason, message, since, revision)


def device_conditions(
    progress: DeviceProgress, revision: str, now: float, previous: Sequence[Condition] = ()
) -> tuple[Condition, ...]:
    state = progress.state
    busy = RECONCILING_REASON.get(state)
    message = progress.shown_message  # as the API shows it: absolute next attempt
    # Drifted is there only while the device is: no row for the other 99,9 %.
    drifted = (() if progress.drift is None else
               (_stamp(previous, ConditionType.DRIFTED, True, "Drifted", progress.drift, now,
                       revision),))
    return (
        _stamp(previous, ConditionType.READY, state is UpdateState.CURRENT, state.value,
               message, now, revision),
        _stamp(previous, ConditionType.RECONCILING, busy is not None, busy or "Idle",
               message if busy else "", now, revision),
        _stamp(previous, ConditionType.STALLED, state.terminal,
               state.value if state.terminal else "None",
               message if state.terminal else "", now, revision),
        *drifted,
    )


def collection_conditions(
    counts: Mapping[UpdateState, int], gate: Gate, revision: str, now: float,
    previous: Sequence[Condition] = (),
) -> tuple[Condition, ...]:
    total = sum(counts.values())
    current = counts.get(UpdateState.CURRENT, 0)
    failed = sum(n for s, n in counts.items() if s.terminal)
    # Pending devices may not even have registered yet: waiting, not updating.
    pending = counts.get(UpdateState.PENDING, 0)
    busy = sum(n for s, n in counts.items() if s in RECONCILING_REASON) - pending
    summary = (f"{current} of {total} devices current, {busy} updating, "
               f"{pending} pending (not started or not seen yet), {failed} failed")
    halted = gate.halted
    return (
        _stamp(previous, ConditionType.READY, total > 0 and current == total,
               "AllCurrent" if current == total else "Progressing", summary, now, revision),
        _stamp(previous, ConditionType.RECONCILING, busy + pending > 0,
               "Rollout" if busy else ("Waiting" if pending else "Idle"),
               gate.reason or summary, now, revision),
        _stamp(previous, ConditionType.STALLED, halted or (failed > 0 and busy == 0),
               "FailureThreshold" if halted else ("Failures" if failed else "None"),
               gate.reason if halted else summary, now, revision),
    )
