"""The decision core: pure `diff()` and `plan()` returning frozen action values.

`diff` joins desired and observed facts about one device into a `Delta`; `plan` runs the
Object 5 update state machine over it and returns a `Plan` (actions, the progress record
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
    PushPackage,
    ReadState,
    Verify,
    Wait,
    WriteUri,
)
from reconciler.engine.conditions import collection_conditions, device_conditions
from reconciler.engine.delta import Delta, diff
from reconciler.engine.plan import DEFAULT_CONFIG, plan, retarget
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
from reconciler.engine.step import Plan

__all__ = [
    "DEFAULT_CONFIG",
    "EFFECTS",
    "OPEN",
    "Action",
    "CancelDownload",
    "Delta",
    "EngineConfig",
    "Execute",
    "Gate",
    "GateKind",
    "NoOp",
    "Observe",
    "Outcome",
    "Plan",
    "PushPackage",
    "ReadState",
    "RolloutStats",
    "Verify",
    "Wait",
    "WriteUri",
    "classify",
    "collection_conditions",
    "device_conditions",
    "diff",
    "plan",
    "retarget",
    "rollout_gate",
    "slots_to_release",
]
