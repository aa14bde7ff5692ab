"""What several nodes sharing one store agree on: who owns a device, and the conditions a
progress write carries so it lands only while they hold.

`Fence`: the node a device registered with owns it, at an epoch that moves whenever a
Register at another node takes it over; a fenced write lands only while the writer still
owns the device at that epoch. `SlotClaim`: a write that puts a device in flight lands
only while its collection has a free `maxConcurrent` slot, counted in the store across
every node. Built by `reconciler.cluster` and the controller, checked by the store.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Fence:
    endpoint: str
    node: str
    epoch: int
    # False: also lands while the device has no registration row at all (a write about
    # a device not registered here, which no other node may own either)
    strict: bool = True


@dataclass(frozen=True, slots=True)
class SlotClaim:
    collection_id: str
    limit: int  # the collection's maxConcurrent: devices in flight at once, all nodes
