"""`Pushes`: what the server knows of its pushes: running, how far each came, how the
latest one stopped; bounded by the endpoints that were pushed to."""

from __future__ import annotations

import asyncio

import pytest

from reconciler.errors import DeviceRequestFailed, DeviceTimeout, TemporaryError
from reconciler.lwm2m.pushes import Pushes, detached
from reconciler.model.observed import PushStop

NOW = 500.0


def test_a_stopped_push_is_recorded_told_and_resumed_where_the_device_left_off() -> None:
    pushes, told = Pushes(lambda: NOW), []
    pushes.subscribe(told.append)
    with pytest.raises(DeviceTimeout), pushes.pushing("ep", "img", 5000,
                                                      resume=False) as transfer:
        assert pushes.running("ep")
        transfer.offset = 3072  # three 1024-byte blocks acknowledged
        raise DeviceTimeout("silent")
    assert not pushes.running("ep") and told == []  # told when it has ended
    pushes.ended("ep")
    assert told == ["ep"]
    assert pushes.stop("ep") == PushStop(NOW, 3, 5, "silent")
    with pushes.pushing("ep", "img", 5000, resume=True) as again:
        assert again.offset == 3072
        assert pushes.stop("ep") is None  # a push runs again: the stop is history
        again.offset = 5000
    assert pushes.stop("ep") is None and len(pushes) == 0  # done: nothing kept


def test_another_package_or_a_fresh_push_starts_at_block_0() -> None:
    pushes = Pushes(lambda: NOW)
    for package, size, resume in (("other", 5000, True), ("img", 4000, True),
                                  ("img", 5000, False)):
        with pytest.raises(TemporaryError), pushes.pushing("ep", "img", 5000,
                                                           resume=False) as transfer:
            transfer.offset = 2048
            raise TemporaryError("lost")
        with pushes.pushing("ep", package, size, resume=resume) as transfer:
            assert transfer.offset == 0, (package, size, resume)


def test_a_refused_push_is_a_refused_stop_with_nothing_to_resume() -> None:
    pushes = Pushes(lambda: NOW)
    with pytest.raises(DeviceRequestFailed), pushes.pushing("ep", "img", 100,
                                                            resume=False) as transfer:
        with pytest.raises(TemporaryError, match="already running"), pushes.pushing(
                "ep", "img", 100, resume=False):
            pass  # one push at a time
        transfer.offset = 64
        raise DeviceRequestFailed("/5/0/0", "4.13", "too large")
    stop = pushes.stop("ep")
    assert stop is not None and stop.refused and "4.13" in stop.reason
    with pushes.pushing("ep", "img", 100, resume=True) as again:
        assert again.offset == 0


async def test_a_detached_push_waits_for_a_slot_and_its_end_is_told() -> None:
    pushes, told, order = Pushes(lambda: NOW, limit=1), [], []
    pushes.subscribe(told.append)
    gate, started = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        with pushes.pushing("a", "img", 10, resume=False, reserved=True):
            order.append("a")
            started.set()
            await gate.wait()

    async def second() -> None:
        with pushes.pushing("b", "img", 10, resume=False, reserved=True):
            order.append("b")
            raise DeviceTimeout("silent")

    pushes.reserve("a")
    pushes.reserve("b")
    tasks = [asyncio.create_task(detached(pushes, "a", first)),
             asyncio.create_task(detached(pushes, "b", second))]
    await started.wait()
    for _ in range(5):
        await asyncio.sleep(0)  # every other task gets its turn: b stays behind the slot
    assert order == ["a"] and pushes.running("b")  # b waits for the one slot
    gate.set()
    await asyncio.gather(*tasks)
    assert order == ["a", "b"] and told == ["a", "b"]
    assert not pushes.running("a") and not pushes.running("b")
    assert pushes.stop("a") is None and pushes.stop("b") is not None


def test_an_endpoint_that_went_away_is_forgotten() -> None:
    pushes = Pushes(lambda: NOW)
    with pytest.raises(DeviceTimeout), pushes.pushing("ep", "img", 100, resume=False):
        raise DeviceTimeout("silent")
    assert len(pushes) == 2
    pushes.forget("ep")
    assert pushes.stop("ep") is None and len(pushes) == 0
