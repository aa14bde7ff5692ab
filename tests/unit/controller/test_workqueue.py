"""The keyed work queue: dedup, one run per key at a time, bounded parallelism, backoff."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from reconciler.controller.workqueue import Requeue, WorkQueue


async def _running(queue: WorkQueue) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    return stop, asyncio.create_task(queue.run(stop))


async def test_a_key_added_many_times_while_queued_runs_once() -> None:
    runs: Counter[str] = Counter()

    async def handler(key: str) -> None:
        runs[key] += 1

    queue = WorkQueue(handler, workers=2)
    for _ in range(5):
        queue.add("a")
    queue.add("b")
    stop, task = await _running(queue)
    await queue.idle()
    stop.set()
    await task
    assert runs == {"a": 1, "b": 1}


async def test_one_key_never_runs_twice_at_once_but_a_trigger_during_a_run_is_kept() -> None:
    active, peak, runs = 0, 0, 0
    release = asyncio.Event()

    async def handler(key: str) -> None:
        nonlocal active, peak, runs
        active += 1
        peak = max(peak, active)
        runs += 1
        if runs == 1:
            queue.add("k")  # a trigger while this key runs: must not run in parallel
            await release.wait()
        active -= 1

    queue = WorkQueue(handler, workers=4)
    queue.add("k")
    stop, task = await _running(queue)
    await asyncio.sleep(0)  # let the first run start
    release.set()
    await queue.idle()
    stop.set()
    await task
    assert (peak, runs) == (1, 2)


async def test_parallelism_is_bounded_by_the_worker_count() -> None:
    active, peak = 0, 0
    gate = asyncio.Event()

    async def handler(key: str) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await gate.wait()
        active -= 1

    queue = WorkQueue(handler, workers=3)
    queue.add_all([f"k{i}" for i in range(10)])
    stop, task = await _running(queue)
    while active < 3:
        await asyncio.sleep(0)
    gate.set()
    await queue.idle()
    stop.set()
    await task
    assert peak == 3


async def test_a_failing_key_is_retried_with_backoff_and_a_wake_time_is_honoured() -> None:
    attempts: list[str] = []
    done = asyncio.Event()
    clock = asyncio.get_running_loop().time

    async def handler(key: str) -> Requeue | None:
        attempts.append(key)
        if len(attempts) < 3:
            raise RuntimeError("device did not answer")
        if len(attempts) == 3:
            return Requeue(0.01)  # look again shortly
        done.set()
        return None

    queue = WorkQueue(handler, workers=1, backoff=0.01, backoff_max=0.02, clock=clock)
    queue.add("x")
    stop, task = await _running(queue)
    await asyncio.wait_for(done.wait(), 5)
    stop.set()
    await task
    assert attempts == ["x"] * 4


@pytest.mark.parametrize("after", [0.0, -1.0, float("nan")])
def test_a_requeue_always_carries_a_delay(after: float) -> None:
    with pytest.raises(ValueError, match="delay > 0"):
        Requeue(after)


async def test_a_trigger_during_a_bulk_pass_waits_behind_at_most_one_key_per_worker() -> None:
    order: list[str] = []
    queue: WorkQueue

    async def handler(key: str) -> None:
        order.append(key)
        if len(order) == 50:  # a registration arrives in the middle of a resync
            queue.add("registered")
            added_at.append(len(order))
        await asyncio.sleep(0)

    added_at: list[int] = []
    queue = WorkQueue(handler, workers=2)
    queue.add_background(f"d{n}" for n in range(1_000))
    stop, task = await _running(queue)
    await queue.idle()  # also waits for the bulk keys
    stop.set()
    await task
    assert len(order) == 1_001 and sorted(order) == sorted({*order})
    # 1 running + 2 waiting bulk keys at most: not the 950 left of the pass
    assert order.index("registered") - added_at[0] <= 3


async def test_a_bulk_key_triggered_before_its_turn_runs_once_and_counts_as_queued() -> None:
    runs: Counter[str] = Counter()

    async def handler(key: str) -> None:
        runs[key] += 1

    queue = WorkQueue(handler, workers=1)
    queue.add_background(["a", "b", "c"])
    queue.add_background(["b"])  # a second pass before the first ran: held once
    queue.add("c")  # triggered while its bulk copy waits
    assert len(queue) == 3
    stop, task = await _running(queue)
    await queue.idle()
    stop.set()
    await task
    assert runs == {"a": 1, "b": 1, "c": 1}
