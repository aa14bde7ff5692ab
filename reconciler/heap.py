"""The process's heap around a big revision: no long collector pause while millions of
objects are made or kept, memory handed back once they are gone, and per-key tables
that shrink again after a big revision's keys leave them.

`no_full_collections()` holds off the cyclic garbage collector's full passes while a
revision is parsed (`sources.assemble`) and applied (`controller.decide`): each full
pass walks every tracked object holding the GIL (measured: ~0.4 s with a 200,000-device
snapshot alive), and a heap that grows by millions of objects would trigger one every
few hundred thousand. Young passes still run, so cycles made meanwhile are still found.

`settle()` runs after a revision that added or removed many devices, instead of the
full pass that used to run there (the pause that broke the 100 ms bound): a young pass
for the cycles the apply left, then `gc.freeze()`, which moves every object alive at that
moment (the new snapshot, the modules) out of all later passes in O(1). Frozen objects
are still freed by reference counting as soon as nothing holds them: a snapshot is
acyclic (frozen dataclasses of strings), so its devices' memory returns when they go
away. What freezing costs: a cycle that is alive when `settle()` runs and becomes
garbage later is never collected (bounded by what is alive at one moment, per big
revision; bench/big_commit.py reports it as `frozen_garbage`). Then glibc's
`malloc_trim(0)`, in a worker thread (ctypes drops the GIL), hands the freed pages back
to the system: without it RSS stays at its peak after the devices go away.

`dismantle()` frees many objects a slice at a time, for a snapshot's devices once the
revision that removed them is applied.

`configure_malloc()` sets glibc's malloc for a long-running server (`fota serve`, before
its first thread): one arena for every thread, and blocks of 128 KiB or more each in a
mapping of its own (see there).

`Shrinker` rebuilds a dict or set in place once it holds under a quarter of the most it
held: CPython never gives back a table it grew, so a map that once held 200,000 keys
would keep megabytes after they leave. Called by the work queue and the decider.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import platform
import threading
from collections.abc import Iterator
from typing import Any

FULL_PASS_HELD = 1_000_000  # young passes between two full ones: none during an apply
SHRINK_BELOW = 4  # rebuild a table once it holds less than 1/4 of its peak
SHRINK_FROM = 1024  # ... and only a table that once held this many (small ones cost little)
DISMANTLE_STEP = 2_000  # objects freed per slice by `dismantle`: well under a millisecond

_lock = threading.Lock()
_holders = 0
_saved: tuple[int, int, int] = gc.get_threshold()


@contextlib.contextmanager
def no_full_collections() -> Iterator[None]:
    """No full collection while inside (nestable, from any thread)."""
    global _holders, _saved
    with _lock:
        if _holders == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(_saved[0], _saved[1], FULL_PASS_HELD)
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                gc.set_threshold(*_saved)


async def settle() -> None:
    """After a big revision: freeze what is alive and give freed memory back (see module).
    Never a full collection: that would hold the event loop for the whole heap's walk."""
    gc.collect(1)  # the young generations only: milliseconds, whatever the heap's size
    gc.freeze()
    await asyncio.to_thread(_malloc_trim)


def dismantle(values: list[Any]) -> None:
    """Drop `values`, the last references to many objects, `DISMANTLE_STEP` at a time.
    Freeing 200,000 devices at once is one C-level cascade that holds the GIL throughout
    (measured: 0.2 s of the event loop, from a worker thread); between two slices any
    other thread, the loop's too, can take the GIL. Meant for a worker thread."""
    while values:
        del values[-DISMANTLE_STEP:]


class Shrinker:
    """Remembers the most entries one dict or set held; `removed` compacts it in place
    once it holds under 1/`SHRINK_BELOW` of that, so each rebuild's copy is paid for by
    the removals before it (O(1) per removal, amortised)."""

    __slots__ = ("peak",)

    def __init__(self) -> None:
        self.peak = 0

    def added(self, table: dict[Any, Any] | set[Any]) -> None:
        if len(table) > self.peak:
            self.peak = len(table)

    def removed(self, table: dict[Any, Any] | set[Any]) -> None:
        if self.peak >= SHRINK_FROM and len(table) < self.peak // SHRINK_BELOW:
            compact(table)
            self.peak = len(table)


def compact(table: dict[Any, Any] | set[Any]) -> None:
    """Rebuild `table` in place at the size its entries need: `clear()` frees the grown
    table, re-adding allocates one sized for what is left (insertion order kept)."""
    kept = table.copy()
    table.clear()
    table.update(kept)  # dict.update(dict), set.update(set)


# glibc's mallopt(3) parameters
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_FROM = 128 * 1024  # bytes: a block this big or bigger is a mapping of its own


def configure_malloc() -> bool:
    """glibc's malloc for a server whose memory must come back after a big revision (issue
    8 item 6); call before the process's first thread. False where there is no glibc.

    - One arena: by default each thread that allocates may get an arena of its own (up
      to 8 per core), and memory freed in one stays in it: after a 200,000-device commit
      and its revert, 24 MB stayed resident in the worker threads' arenas after
      `malloc_trim` (bench/big_commit.py, mem8); with one arena, none.
    - A fixed mmap threshold: by default glibc raises it to the size of the largest
      mapped block freed so far (up to 32 MiB), so after a big revision's tables are
      freed, the next ones are carved from the heap and stay there. Fixed, a block of
      `MMAP_FROM` or more is always mapped, and unmapped when freed."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, 1)) and bool(
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_FROM))


def _libc() -> ctypes.CDLL | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def _load_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    libc = _libc()
    return libc.malloc_trim if libc is not None else None


_trim = _load_trim()


def _malloc_trim() -> None:
    if _trim is not None:
        _trim(0)
