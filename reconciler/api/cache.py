"""Rendered response bodies, each kept while its stamp holds.

Keyed by what was asked (route and ids). A body is valid for the stamp it was rendered
at: by default the store's `version()`, which any commit moves, so a body is never
staler than the store; a route whose answer depends on less passes a narrower stamp
(a device list: its own collection's changes and the applied revision, see
`device_lists.py`), so a rollout elsewhere, or a commit that touched other devices,
leaves it cached. Bounded in entries and bytes. Used by the routers in `routes.py` and
`status.py`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import anyio.to_thread

from reconciler.store import StoreReader

Stamp = Callable[[], Hashable]


class BodyCache:
    def __init__(self, reader: StoreReader, *, entries: int = 256,
                 max_bytes: int = 64 * 1024 * 1024) -> None:
        self._reader = reader
        self._entries = entries
        self._max_bytes = max_bytes
        self._bodies: OrderedDict[Hashable, tuple[Hashable, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, render: Callable[[], bytes], stamp: Stamp | None = None
            ) -> bytes:
        """The body for `key`, rendered by `render()` when absent or its stamp moved."""
        at, body = self._lookup(key, stamp)
        if body is None:
            body = render()
            self._remember(key, at, body)
        return body

    async def get_offloaded(self, key: Hashable, render: Callable[[], bytes],
                            stamp: Stamp | None = None) -> bytes:
        """As `get`, but a fresh render of a big list (tens of ms) runs in a worker thread
        so the event loop it shares with the controller in `fota serve` keeps going."""
        at, body = self._lookup(key, stamp)
        if body is None:
            body = await anyio.to_thread.run_sync(render)
            self._remember(key, at, body)
        return body

    def _lookup(self, key: Hashable, stamp: Stamp | None) -> tuple[Hashable, bytes | None]:
        # The stamp is read before any render: what a render reads is at least that new.
        at = stamp() if stamp is not None else self._reader.version()
        with self._lock:
            found = self._bodies.get(key)
            if found is None or found[0] != at:
                return at, None
            self._bodies.move_to_end(key)
            return at, found[1]

    def _remember(self, key: Hashable, at: Hashable, body: bytes) -> None:
        with self._lock:
            if len(body) > self._max_bytes:
                return
            old = self._bodies.pop(key, None)
            if old is not None:
                self._bytes -= len(old[1])
            self._bodies[key] = (at, body)
            self._bytes += len(body)
            while len(self._bodies) > self._entries or self._bytes > self._max_bytes:
                _, (_, dropped) = self._bodies.popitem(last=False)
                self._bytes -= len(dropped)
