"""`DeviceLists`: each collection's device list kept as one JSON text per device, so a
store change re-renders only the devices it touched instead of the whole list.

A rollout commits many times a second; a fresh render of a 10,000-device list costs
tens of ms, so a list rendered whole after every commit cannot keep up with a dashboard
polling it. The store stamps every observed change of a device (`change_stamp`,
`changed_devices`); a list kept at one stamp is brought up to date by re-reading the
rows changed since and joining again only their blocks of the encoded list (~ms). A newly
applied snapshot (the desired rows may have changed; `desired_generation`) renders the
list whole once it is complete.
Bounded: at most `MAX_KEPT` device texts over all collections (least recently used
collections go first); a bigger list is rendered whole each time. Used by the
device-list route in `routes.py` through `BodyCache`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from reconciler.store import StoreReader

MAX_KEPT = 50_000  # device texts held (~20 MB at the reference shape's size)
BLOCK = 256  # devices per pre-joined block: a change re-joins its block, not the list
Stamp = tuple[int, int]  # (desired generation, the collection's change stamp)
_HEAD, _TAIL = b'{"devices":[', b"]}"


@dataclass
class _Kept:
    """A list as encoded device texts in id order, joined in blocks of BLOCK devices:
    the body is one join of the blocks (a copy of the bytes, in C), and a change of a
    few devices re-joins only their blocks."""

    stamp: Stamp
    texts: dict[str, bytes]
    ids: list[str] = field(default_factory=list)  # by device id, the list's order
    at: dict[str, int] = field(default_factory=dict)  # device id -> its place in ids
    blocks: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reorder()

    def reorder(self) -> None:
        """After devices joined or left: places and every block again."""
        self.ids = sorted(self.texts)
        self.at = {device_id: n for n, device_id in enumerate(self.ids)}
        self.blocks = [self._join(n) for n in range(0, len(self.ids), BLOCK)]

    def rejoin(self, device_ids: Iterable[str]) -> None:
        for start in {self.at[d] // BLOCK * BLOCK for d in device_ids}:
            self.blocks[start // BLOCK] = self._join(start)

    def _join(self, start: int) -> bytes:
        return b",".join([self.texts[d] for d in self.ids[start:start + BLOCK]])

    def body(self) -> bytes:
        parts = [_HEAD]
        for block in self.blocks:
            parts += (block, b",")
        if self.blocks:
            parts.pop()  # the comma after the last block
        parts.append(_TAIL)
        return b"".join(parts)


class DeviceLists:
    def __init__(self, reader: StoreReader, *, max_kept: int = MAX_KEPT) -> None:
        self._reader = reader
        self._max_kept = max_kept
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._lock = threading.Lock()  # one render at a time: they share the kept texts

    def stamp(self, collection_id: str) -> Stamp:
        """Moves whenever the collection's list may have changed (cheap: two lookups)."""
        return self._reader.desired_generation(), self._reader.change_stamp(collection_id)

    def render(self, collection_id: str) -> bytes:
        """`{"devices": [...]}` at the store's present state (read after the stamp)."""
        stamp = self.stamp(collection_id)
        if collection_id not in self._kept and self._size(collection_id) > self._max_kept:
            # too big to keep: one aggregate query renders it fastest
            return _wrap(self._reader.devices_json(collection_id))
        with self._lock:
            kept = self._kept.get(collection_id)
            if kept is None or kept.stamp[0] != stamp[0] or not self._update(
                    collection_id, kept, stamp):
                kept = self._whole(collection_id, stamp)
            if collection_id in self._kept:
                self._kept.move_to_end(collection_id)
            return kept.body()

    def _size(self, collection_id: str) -> int:
        return sum(n for c, _, n in self._reader.state_counts() if c == collection_id)

    def _update(self, collection_id: str, kept: _Kept, stamp: Stamp) -> bool:
        """Re-read the devices changed since the kept stamp; False when so many changed
        that a whole render is as cheap."""
        changed = self._reader.changed_devices(collection_id, kept.stamp[1])
        if len(changed) > max(64, len(kept.ids) // 4):
            return False
        found = dict(self._reader.devices_json_rows(collection_id, changed))
        moved = False
        for device_id in changed:
            text = found.get(device_id)
            if text is None:  # it left the collection
                moved |= kept.texts.pop(device_id, None) is not None
            else:
                moved |= device_id not in kept.texts
                kept.texts[device_id] = text.encode()
        if moved:
            kept.reorder()
        else:
            kept.rejoin(d for d in changed if d in found)
        kept.stamp = stamp
        return True

    def _whole(self, collection_id: str, stamp: Stamp) -> _Kept:
        """Every device's text; kept for next time unless the list is too big to."""
        self._kept.pop(collection_id, None)
        rows = self._reader.devices_json_rows(collection_id, None)
        kept = _Kept(stamp, {device_id: text.encode() for device_id, text in rows})
        if len(rows) <= self._max_kept:
            self._kept[collection_id] = kept
            while sum(len(k.ids) for k in self._kept.values()) > self._max_kept:
                self._kept.popitem(last=False)  # least recently used first
        return kept


def _wrap(array_json: str) -> bytes:
    return b'{"devices":' + array_json.encode() + b"}"
