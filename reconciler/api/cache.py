"""Rendered response bodies, kept until the store changes.

Keyed by what was asked (route and ids) and valid for one `reader.version()`: any commit
by the controller moves the version and empties the cache, so a body is never staler than
the store. Bounded in entries and bytes; a 10,000-device list is rendered once per change
instead of once per request. Used by the routers in `routes.py`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import anyio.to_thread

from reconciler.store import StoreReader


class BodyCache:
    def __init__(self, reader: StoreReader, *, entries: int = 256,
                 max_bytes: int = 64 * 1024 * 1024) -> None:
        self._reader = reader
        self._entries = entries
        self._max_bytes = max_bytes
        self._bodies: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._version: int | None = None
        self._lock = threading.Lock()

    def get(self, key: Hashable, render: Callable[[], bytes]) -> bytes:
        """The body for `key`, rendered by `render()` when absent or the store moved on."""
        version, body = self._lookup(key)
        if body is None:
            body = render()
            self._remember(version, key, body)
        return body

    async def get_offloaded(self, key: Hashable, render: Callable[[], bytes]) -> bytes:
        """As `get`, but a fresh render of a big list (tens of ms) runs in a worker thread
        so the event loop it shares with the controller in `fota serve` keeps going."""
        version, body = self._lookup(key)
        if body is None:
            body = await anyio.to_thread.run_sync(render)
            self._remember(version, key, body)
        return body

    def _lookup(self, key: Hashable) -> tuple[int, bytes | None]:
        version = self._reader.version()
        with self._lock:
            if version != self._version:
                self._bodies.clear()
                self._bytes = 0
                self._version = version
            body = self._bodies.get(key)
            if body is not None:
                self._bodies.move_to_end(key)
            return version, body

    def _remember(self, version: int, key: Hashable, body: bytes) -> None:
        with self._lock:
            if version != self._version or len(body) > self._max_bytes:
                return
            self._bodies[key] = body
            self._bytes += len(body)
            while len(self._bodies) > self._entries or self._bytes > self._max_bytes:
                _, dropped = self._bodies.popitem(last=False)
                self._bytes -= len(dropped)
