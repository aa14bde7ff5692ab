"""`ControllerConfig`: the reconcile loop's tunables, with the engine's inside.

A frozen value the loop reads (`Controller`, `Decider`, `Executor`); built by
`reconciler.serve.settings` from flags and `FOTA_*` variables, or by tests directly. The
bounds are `annotated_types` metadata so the settings model validates them without
repeating a field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from annotated_types import Ge, Gt

from reconciler.engine import EngineConfig


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    workers: Annotated[int, Ge(1)] = 64  # reconciles running at once
    # A safety net for a lost trigger: every wait the engine knows has its own timer (the
    # scripted-device property test converges with no resync at all). A pass costs
    # ~0.1-0.2 ms of CPU a device, 20-40 s at 200,000: once a minute kept a quiet fleet's
    # server a third busy.
    resync_interval: Annotated[float, Gt(0)] = 300.0  # seconds: every device is looked at
    error_backoff: Annotated[float, Gt(0)] = 1.0  # seconds after a failed reconcile, doubled
    error_backoff_max: Annotated[float, Gt(0)] = 60.0  # the longest such delay
    request_timeout: Annotated[float, Gt(0)] = 20.0  # seconds for one CoAP request
    execute_timeout: Annotated[float, Gt(0)] = 5.0  # devices often reboot before answering
    engine: EngineConfig = field(default_factory=EngineConfig)

    def engine_config(self) -> EngineConfig:
        return self.engine
