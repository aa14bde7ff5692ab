"""Memory the controller's own indexes hold comes back after the devices go away (issue 8
item 6): a dict or set keeps the table it grew to unless it is rebuilt. Measured with
tracemalloc on a fleet of 20,000, where a kept table is about a megabyte."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Iterator

import pytest

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


async def test_the_work_queue_gives_its_table_back_once_a_big_revision_is_worked_off(
        traced: None) -> None:
    async def handler(_key: str) -> None:
        return None

    queue = WorkQueue(handler, workers=4)
    stop = asyncio.Event()
    running = asyncio.create_task(queue.run(stop))
    await asyncio.sleep(0)  # the workers are waiting
    baseline = tracemalloc.get_traced_memory()[0]
    queue.add_all([f"d{n}" for n in range(FLEET)])
    await queue.idle()
    kept = tracemalloc.get_traced_memory()[0] - baseline
    stop.set()
    await running
    assert len(queue) == 0 and kept < KEPT_BYTES, kept
