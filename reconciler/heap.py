"""The process's heap around a big revision: short collector pauses while millions of
objects are made, and memory handed back once they are gone.

`no_full_collections()` holds off the cyclic garbage collector's full passes while a
revision is parsed (`sources.assemble`) and applied (`controller.decide`): each full
pass walks every live object holding the GIL, 0.2-0.5 s with a 200,000-device snapshot
alive, and a heap that grows by millions of objects triggers one every few hundred
thousand. Young passes still run, so cycles made meanwhile are still found. Unlike
`gc.freeze()`, nothing is exempted for good: once the apply is over the usual
thresholds return and a cycle that becomes garbage later is collected as always.

`release()` runs after a revision that added or removed many devices: one full
collection at a moment the caller chooses, then glibc's `malloc_trim(0)`, which hands the
freed arenas' pages back to the system (without it RSS stays at its peak after the
devices go away). On other C libraries only the collection runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import platform
import threading
from collections.abc import Iterator

FULL_PASS_HELD = 1_000_000  # young passes between two full ones: none during an apply

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


def release() -> None:
    """Collect garbage cycles and give freed memory back to the system (see module)."""
    gc.collect()
    _malloc_trim()


def _load_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name).malloc_trim if name else None


_trim = _load_trim()


def _malloc_trim() -> None:
    if _trim is not None:
        _trim(0)
