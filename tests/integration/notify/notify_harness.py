"""A real state file with one collection, its writer and a reader, for the notifier's
tests: `State.desired` builds the revision, `State.event` writes what the controller
would (a progress change and its event)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from builders.desired import NEW, OLD, collection, desired_state, device

from reconciler.model.desired import DesiredState
from reconciler.model.notify import Notifications
from reconciler.model.observed import DeviceEvent, DeviceProgress
from reconciler.model.status import UpdateState
from reconciler.store import SqliteReader, SqliteStore

REV = "1" * 40


@dataclass
class State:
    path: Path
    store: SqliteStore
    reader: SqliteReader

    def desired(self, notifications: Notifications, revision: str = REV,
                target: str = NEW.image_id, devices: int = 2) -> DesiredState:
        found = desired_state(collection(target), (OLD, NEW),
                              [device(f"d{n}") for n in range(1, devices + 1)], revision)
        return DesiredState(found.revision, found.collections, found.images, found.devices,
                            notifications)

    def event(self, device_id: str, message: str, kind: str = "state",
              state: UpdateState = UpdateState.DOWNLOADING, target: str = NEW.image_id) -> None:
        """One progress change with its event, as the controller writes it."""
        self.store.put_progress(DeviceProgress(device_id, target, state),
                                [DeviceEvent(device_id, 1_700_000_000.0, kind, message, REV)])
