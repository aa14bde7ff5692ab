"""The engine's view of one device, for the engine tests."""

from __future__ import annotations

from typing import Any

from builders.desired import one_device
from reconciler.engine import Delta, diff
from reconciler.model.desired import DesiredState
from reconciler.model.lwm2m import Registration
from reconciler.model.observed import DeviceReport


def delta(
    state: DesiredState | None = None,
    rep: DeviceReport | None = None,
    reg: Registration | None = None,
    **flags: Any,
) -> Delta:
    """`diff` for device "d1" of `state` (default: `one_device()`)."""
    return diff(state or one_device(), "d1", rep, reg, **flags)
