"""Memory the controller's own indexes hold comes back after the devices go away (issue 8
item 6): a dict or set keeps the table it grew to unless it is rebuilt. Measured with
tracemalloc on a fleet of 20,000, where a kept table is about a megabyte. And `heap`'s
settling after a big revision: frozen out of the collector's passes, still freed."""

from __future__ import annotations

import asyncio
import gc
import logging
import platform
import sys
import tracemalloc
import weakref
from collections.abc import Iterator

import pytest
from builders.tools import finished

from reconciler import heap
from reconciler.controller.rollout import RolloutIndex
from reconciler.controller.workqueue import WorkQueue
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState

FLEET = 20_000
KEPT_BYTES = 150_000  # what may stay: well under the ~1 MB table of 20,000 entries


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    yield
    tracemalloc.stop()


def test_the_rollout_index_gives_its_table_back_when_devices_go(traced: None) -> None:
    index = RolloutIndex()
    baseline = tracemalloc.get_traced_memory()[0]
    for n in range(FLEET):
        index.put("c", DeviceProgress(f"d{n}", "img", UpdateState.PENDING))
    grown = tracemalloc.get_traced_memory()[0] - baseline
    for n in range(10, FLEET):
        index.remove(f"d{n}")
    kept = tracemalloc.get_traced_memory()[0] - baseline
    assert len(index) == 10 and index.get("d9") is not None
    assert grown > 10 * KEPT_BYTES and kept < KEPT_BYTES, (grown, kept)


@pytest.mark.parametrize("bulk", [False, True], ids=["triggered", "bulk"])
async def test_the_work_queue_gives_its_table_back_once_a_big_revision_is_worked_off(
        traced: None, bulk: bool) -> None:
    async def handler(_key: str) -> None:
        return None

    queue = WorkQueue(handler, workers=4)
    stop = asyncio.Event()
    running = asyncio.create_task(queue.run(stop))
    await asyncio.sleep(0)  # the workers are waiting
    baseline = tracemalloc.get_traced_memory()[0]
    keys = [f"d{n}" for n in range(FLEET)]
    queue.add_background(keys) if bulk else queue.add_all(keys)
    del keys
    await queue.idle()
    kept = tracemalloc.get_traced_memory()[0] - baseline
    stop.set()
    await running
    assert len(queue) == 0 and kept < KEPT_BYTES, kept


async def test_the_work_queue_gives_its_retry_tables_back_once_the_failures_are_retried(
        traced: None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="reconciler.queue")  # 20,000 first failures
    failed: set[str] = set()
    done = asyncio.Event()

    async def handler(key: str) -> None:
        if key not in failed:  # each key fails once: a failure count and a scheduled retry
            failed.add(key)
            raise OSError("no answer")
        succeeded.add(key)
        if len(succeeded) == FLEET:
            done.set()

    succeeded: set[str] = set()
    queue = WorkQueue(handler, workers=4, backoff=0.001)
    stop = asyncio.Event()
    running = asyncio.create_task(queue.run(stop))
    await asyncio.sleep(0)
    baseline = tracemalloc.get_traced_memory()[0]
    keys = [f"d{n}" for n in range(FLEET)]
    queue.add_all(keys)
    await asyncio.wait_for(done.wait(), 60)
    del keys
    kept = tracemalloc.get_traced_memory()[0] - baseline
    stop.set()
    await running
    # `failed` and `succeeded` are the test's own two sets of 20,000 (their tables and
    # strings): what the queue kept is on top of them.
    own = 2 * sys.getsizeof(failed) + sum(sys.getsizeof(k) for k in failed)
    assert len(queue) == 0 and kept - own < KEPT_BYTES, (kept, own)


@pytest.mark.parametrize("kind", [dict, set])
def test_a_table_compacted_in_place_keeps_its_entries_in_order_and_shrinks(
        kind: type[dict[str, None]] | type[set[str]]) -> None:
    table = kind.fromkeys(f"k{n}" for n in range(FLEET)) if kind is dict else \
        {f"k{n}" for n in range(FLEET)}
    same, shrinker, grown = table, heap.Shrinker(), sys.getsizeof(table)
    shrinker.added(table)
    for n in range(10, FLEET):
        table.remove(f"k{n}") if isinstance(table, set) else table.pop(f"k{n}")
        shrinker.removed(table)
    assert table is same and sorted(table) == sorted(f"k{n}" for n in range(10))
    if isinstance(table, dict):
        assert list(table) == [f"k{n}" for n in range(10)]  # insertion order kept
    assert sys.getsizeof(table) * 20 < grown, (sys.getsizeof(table), grown)


async def test_settling_freezes_without_a_full_pass_and_frozen_objects_still_go() -> None:
    class Snapshot:  # an acyclic object, as a revision's devices are
        pass

    alive = Snapshot()
    gone = weakref.ref(alive)
    passes: list[int] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    gc.callbacks.append(on_gc)
    try:
        await heap.settle()
        frozen = gc.get_freeze_count()
        del alive  # freed by its reference count, frozen or not
        assert gone() is None and gc.get_freeze_count() < frozen
    finally:
        gc.callbacks.remove(on_gc)
        gc.unfreeze()  # the rest of the suite collects as usual
    assert passes and 2 not in passes, passes


_MALLOC_CHILD = """
import ctypes, sys, threading
from reconciler import heap
if sys.argv[1] == "configured":
    assert heap.configure_malloc()
libc = ctypes.CDLL("libc.so.6")
class Info(ctypes.Structure):  # glibc's struct mallinfo2
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
def work():
    kept = [bytes(4096) for _ in range(500)]  # over pymalloc's 512 bytes: malloc's
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
table = bytearray(2 ** 20)  # mapped (over 128 KiB) ...
del table  # ... and unmapped: by default the threshold is now 1 MiB
before = libc.mallinfo2().hblks
table = bytearray(600 * 1024)
print(libc.mallinfo2().hblks - before)
libc.malloc_stats()  # per arena, on stderr
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
@pytest.mark.parametrize("how", ["default", "configured"])
async def test_configured_malloc_has_one_arena_and_maps_big_blocks_each_time(how: str) -> None:
    """What `fota serve` sets before its threads start (`heap.configure_malloc`): worker
    threads share one arena (by default each may get its own, keeping what is freed in
    it), and a big table freed does not move glibc's mmap threshold over the next one."""
    code, out, err = await finished(sys.executable, "-c", _MALLOC_CHILD, how, timeout=60)
    assert code == 0, err.decode()
    arenas = err.decode().count("Arena ")
    mapped = int(out.decode())  # the 600 KiB block in a mapping of its own: 1, else 0
    if how == "configured":
        assert (arenas, mapped) == (1, 1), err.decode()
    else:  # the defaults this guards against, on this machine's glibc
        assert arenas > 1 and mapped == 0, (arenas, mapped)
