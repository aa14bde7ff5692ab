"""The building blocks the state machine's phases share: the `Decision` value, the decision
context and the helpers that move a progress record to a new state with its event.

Used only by `machine.py` and `phases.py`; the controller sees `Decision`.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.engine.actions import Action, NoOp, Wait
from reconciler.engine.delta import Delta
from reconciler.engine.policy import EngineConfig, Gate
from reconciler.model.desired import FirmwareImage
from reconciler.model.observed import DeviceEvent, DeviceProgress, DeviceReport
from reconciler.model.status import UpdateState


@dataclass(frozen=True, slots=True)
class Decision:
    actions: tuple[Action, ...]
    progress: DeviceProgress | None  # None: nothing to persist (hands off, never seen)
    events: tuple[DeviceEvent, ...] = ()
    # Held by the collection's rollout gate: the controller wakes it when a slot frees.
    gated: bool = False
    # The progress record must reach the disk before the actions run (set by the Execute
    # step: a lost executed_at could mean a second Execute after a restart).
    durable: bool = False

    @property
    def wake_at(self) -> float | None:
        """When the controller should look at this device again without a trigger."""
        times = [a.until for a in self.actions if isinstance(a, Wait) and a.until is not None]
        return min(times) if times else None

    @property
    def settled(self) -> bool:
        """True when nothing is left to send now (only waits or no-ops)."""
        return all(isinstance(a, Wait | NoOp) for a in self.actions)


@dataclass(frozen=True, slots=True)
class Ctx:
    delta: Delta
    target: FirmwareImage
    now: float
    gate: Gate
    config: EngineConfig

    @property
    def report(self) -> DeviceReport:
        assert self.delta.report is not None  # report_fresh is checked before any use
        return self.delta.report

    def event(self, message: str, kind: str = "state") -> DeviceEvent:
        return DeviceEvent(self.delta.device_id, self.now, kind, message, self.delta.revision)


def wait(record: DeviceProgress, reason: str, until: float | None = None) -> Decision:
    return Decision((Wait(reason, until),), record)


def move(ctx: Ctx, record: DeviceProgress, state: UpdateState, message: str,
         **changes: object) -> tuple[DeviceProgress, tuple[DeviceEvent, ...]]:
    """The record in `state`, with one event when the state or its message changed."""
    new = record.evolve(state=state, message=message, updated_at=ctx.now, **changes)
    if record.state is state and record.message == message:
        return new, ()
    return new, (ctx.event(f"{record.state.value} -> {state.value}: {message}"),)


def moved(ctx: Ctx, record: DeviceProgress, state: UpdateState, message: str,
          actions: tuple[Action, ...], *, durable: bool = False, **changes: object) -> Decision:
    new, events = move(ctx, record, state, message, **changes)
    return Decision(actions, new, events, durable=durable)
