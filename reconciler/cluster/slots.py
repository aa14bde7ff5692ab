"""`SharedSlots`: `maxConcurrent` counted across every node sharing the store.

The controller's rollout index counts only what this node wrote, so its gate may let a
device start while other nodes fill the collection's slots. The write that puts a device
in flight therefore carries a `SlotClaim`, which the store checks in the same transaction
against every node's devices in flight (refusing with NoSlot); the device is then held
like one the local gate held, and since a slot freed on another node wakes nobody here,
the collections with devices so held are retried once a second (as many devices as the
local count leaves free, so a full collection costs at most `maxConcurrent` refused
writes a second). On one node the store never refuses what the index allowed. Used by
the controller's Decider.
"""

from __future__ import annotations

from reconciler.engine import Gate, GateKind
from reconciler.model.cluster import SlotClaim
from reconciler.model.desired import Collection
from reconciler.model.observed import DeviceProgress


class SharedSlots:
    def __init__(self) -> None:
        self._waiting: set[str] = set()  # collections with devices a NoSlot held

    @staticmethod
    def claim(collection: Collection | None, before: DeviceProgress | None,
              after: DeviceProgress | None) -> SlotClaim | None:
        """The claim a record needs: it starts flight (and the collection has a limit)."""
        limit = collection.rollout.max_concurrent if collection is not None else None
        if collection is None or limit is None or after is None:
            return None
        if not after.state.in_flight or (before is not None and before.state.in_flight):
            return None
        return SlotClaim(collection.collection_id, limit)

    def full(self, collection_id: str, reason: str) -> Gate:
        """The gate that holds a device the store refused a slot."""
        self._waiting.add(collection_id)
        return Gate(False, reason, GateKind.SLOTS)

    def waiting(self) -> list[str]:
        return sorted(self._waiting)

    def retried(self, collection_id: str, still_held: bool) -> None:
        """A release ran for the collection: forget it once nobody is held."""
        if not still_held:
            self._waiting.discard(collection_id)
