"""`Ownership`: the devices this node owns, at which epoch, and the fences its writes carry.

LwM2M requests to a device must leave from the address it registered with, so the node
a device registered with owns it. A Register here claims the device in the store (a new
epoch when it was another node's); an Update or a De-register here changes the row only
while this node still owns it; a restart adopts what the store says is this node's.
`fence(endpoint)` is what every progress write about a registered device carries: the
store refuses it (NotOwner) once a Register elsewhere moved the device on, so a node that
lost a device never executes on it. Built by `serve`, called by the controller.
"""

from __future__ import annotations

import logging
from typing import Protocol

from reconciler.model.cluster import Fence
from reconciler.model.lwm2m import ContentFormats, Registration

log = logging.getLogger("reconciler.cluster")


class Records(Protocol):
    """The store's part (`reconciler.store.Store` has it)."""

    def claim_registration(self, reg: Registration, formats: ContentFormats,
                           node: str) -> int: ...
    def put_registration(self, reg: Registration, formats: ContentFormats = ...,
                         *, node: str | None = None) -> None: ...
    def delete_registration(self, endpoint: str, *, node: str | None = None) -> None: ...
    def adopt_registrations(self, node: str, now: float) -> dict[str, int]: ...


class Ownership:
    def __init__(self, records: Records, node: str) -> None:
        self.node = node
        self._records = records
        self._epochs: dict[str, int] = {}  # endpoint -> the epoch this node owns it at

    def registered(self, reg: Registration, formats: ContentFormats) -> bool:
        """A Register at this node: the device is ours from now on. True when it came
        from elsewhere (or this node had not held it since it started): what another
        node recorded meanwhile must be read again."""
        epoch = self._records.claim_registration(reg, formats, self.node)
        moved = self._epochs.get(reg.endpoint) != epoch
        self._epochs[reg.endpoint] = epoch
        return moved

    def updated(self, reg: Registration, formats: ContentFormats) -> None:
        self._records.put_registration(reg, formats, node=self.node)

    def gone(self, endpoint: str) -> None:
        """De-registered or expired here (the row stays if another node owns it now)."""
        self._records.delete_registration(endpoint, node=self.node)
        self._epochs.pop(endpoint, None)

    def adopt(self, now: float) -> set[str]:
        """After a restart: the live registrations this node resumes."""
        self._epochs.update(self._records.adopt_registrations(self.node, now))
        return set(self._epochs)

    def fence(self, endpoint: str, registered: bool = True) -> Fence:
        """What a write about this device must still hold. A device this node never
        claimed gets epoch 0, which no claim hands out: its fenced writes are refused.
        Not `registered` here: the write also lands while no node has it registered,
        never while another does (its registration expired here after it moved on)."""
        return Fence(endpoint, self.node, self._epochs.get(endpoint, 0), registered)

    def lost(self, endpoint: str) -> None:
        """A fenced write was refused: another node owns the device now."""
        if self._epochs.pop(endpoint, None) is not None:
            log.info("%s: owned by another node since a Register there; not acting on it",
                     endpoint)

    def owns(self, endpoint: str) -> bool:
        return endpoint in self._epochs
