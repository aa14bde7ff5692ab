"""The test process's heap, kept small enough that one full pass of the garbage
collector stays short: such a pass walks every tracked object while holding the GIL,
so it stalls every event loop of the process (~2 us per object on the 2-core test VM).
Both are called by tests/conftest.py.

`forget_apps()`, after every test, lets go of the FastAPI apps the test built. FastAPI
(0.165) remembers what kind of callable each endpoint and dependency is in three
module-level LRU caches of 4,096 entries (`fastapi.dependencies.models`), keyed by the
callable itself. `create_app` builds its endpoints as closures over the app's reader,
routers and caches, so those entries kept every app a test process had built alive:
after tests/integration/api a pytest-xdist worker held 1.7 M objects (500 MB), and one
full pass over them took 1.5-3.3 s. One such pass inside
test_a_hanging_receiver_costs_only_its_own_bounded_queue was its "1.6 s event-loop
stall" under two workers. `fota serve` builds one app, so production never grows so.
Clearing the caches costs only FastAPI classifying a callable again.

`freeze_collected()`, once the tests are collected, moves what is alive then (pytest,
hypothesis, Playwright, every test module: ~150,000 objects) out of all later passes
(`gc.freeze()`, as `reconciler.heap.settle` does after a big revision): a full pass
then walks what the tests made, not the harness. Measured over tests/integration/api
and notify at load 3.4: the longest full pass 0.32 s before, 0.17 s after (most of
what is left is freeing the apps those tests built). What it costs: a cycle alive at
that moment that becomes garbage later is never collected; the harness makes few.
"""

from __future__ import annotations

import gc
import sys

# The cached classifiers of fastapi.dependencies.models; a FastAPI without them (older,
# or one that no longer holds callables) has nothing to clear.
_CACHED = ("_is_gen_callable_cached", "_is_async_gen_callable_cached",
           "_is_coroutine_callable_cached")


def forget_apps() -> int:
    """Clear FastAPI's callable caches if FastAPI is loaded; how many were cleared."""
    models = sys.modules.get("fastapi.dependencies.models")
    cleared = 0
    for name in _CACHED:
        cached = getattr(models, name, None)
        if cached is not None and hasattr(cached, "cache_clear"):
            cached.cache_clear()
            cleared += 1
    return cleared


def freeze_collected() -> None:
    """Collect what collecting the tests left, then freeze the rest (see module)."""
    gc.collect()
    gc.freeze()
