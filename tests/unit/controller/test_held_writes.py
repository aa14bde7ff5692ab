"""A slice's devices stay held until its worker thread has written it, even when the
apply that landed it is cancelled meanwhile (a shutdown): a reconcile of one of them must
never write before the slice's older record does."""

from __future__ import annotations

import asyncio
import threading

import pytest

from reconciler.controller.held_writes import HeldWrites, RetargetSlice
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState


async def test_a_cancelled_land_keeps_its_devices_held_until_the_write_is_done() -> None:
    writing, finish = threading.Event(), threading.Event()
    released: list[tuple[list[str], list[str]]] = []
    done = asyncio.Event()

    def write(_batch: RetargetSlice) -> None:  # in the worker thread
        writing.set()
        assert finish.wait(10)

    def release(deferred: list[str], reload: list[str]) -> None:
        released.append((deferred, reload))
        done.set()

    held = HeldWrites(write, release)
    batch = RetargetSlice([(DeviceProgress("d1", "img", UpdateState.PENDING), ())])
    landing = asyncio.create_task(held.land(batch))
    assert await asyncio.to_thread(writing.wait, 10)
    landing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await landing
    assert held.holds("d1") and not held.holds("d2")
    held.defer("d1")
    held.defer("d1", reload=True)  # a Register from another node meanwhile
    finish.set()
    await asyncio.wait_for(done.wait(), 10)
    assert released == [(["d1"], ["d1"])] and not held.holds("d1")
