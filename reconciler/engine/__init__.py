"""The decision core: pure `diff()` and `decide()` returning frozen action values.

`diff` joins desired and observed facts about one device into a `Delta`; `decide` runs the
Object 5 update state machine over it and returns a `Decision` (actions, the progress record
to persist first, events). `rollout_gate` applies a collection's rollout guards and
`conditions` turns progress into Flux-style conditions. Called by the controller only.
"""

from reconciler.engine.actions import (
    EFFECTS,
    Action,
    CancelDownload,
    Execute,
    NoOp,
    Observe,
    Probe,
    PushPackage,
    ReadState,
    Verify,
    Wait,
    WriteUri,
)
from reconciler.engine.conditions import collection_conditions, device_conditions
from reconciler.engine.decision import Decision
from reconciler.engine.delta import Delta, diff
from reconciler.engine.machine import DEFAULT_CONFIG, decide, retarget
from reconciler.engine.policy import (
    OPEN,
    EngineConfig,
    Gate,
    GateKind,
    Outcome,
    RolloutStats,
    classify,
    rollout_gate,
    slots_to_release,
)

__all__ = [
    "DEFAULT_CONFIG",
    "EFFECTS",
    "OPEN",
    "Action",
    "CancelDownload",
    "Decision",
    "Delta",
    "EngineConfig",
    "Execute",
    "Gate",
    "GateKind",
    "NoOp",
    "Observe",
    "Outcome",
    "Probe",
    "PushPackage",
    "ReadState",
    "RolloutStats",
    "Verify",
    "Wait",
    "WriteUri",
    "classify",
    "collection_conditions",
    "decide",
    "device_conditions",
    "diff",
    "retarget",
    "rollout_gate",
    "slots_to_release",
]
