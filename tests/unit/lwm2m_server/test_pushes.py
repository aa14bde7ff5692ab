"""`Pushes`: what the server knows of its pushes: running, how far each came, how the
latest one stopped; bounded by the endpoints that were pushed to."""

from __future__ import annotations

import asyncio

import pytest

from reconciler.errors import DeviceRequestFailed, DeviceTimeout, TemporaryError
from reconciler.lwm2m.push import Transfer
from reconciler.lwm2m.pushes import NOTE_BLOCKS, NOTE_SECONDS, Pushes, detached
from reconciler.model.lwm2m import PushPosition
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


def test_an_endpoint_whose_update_ended_is_dropped() -> None:
    pushes = Pushes(lambda: NOW)
    with pytest.raises(DeviceTimeout), pushes.pushing("ep", "img", 100, resume=False):
        raise DeviceTimeout("silent")
    assert len(pushes) == 1  # its transfer and its stop
    pushes.drop("ep")
    assert pushes.stop("ep") is None and len(pushes) == 0


class Log:
    """A position log that stores when told to (`store`), as the controller's does in
    batches: what was noted and dropped, and the writes a push may wait for."""

    def __init__(self) -> None:
        self.notes: list[PushPosition] = []
        self.dropped: list[str] = []
        self.waiting: list[asyncio.Future[None]] = []

    def note(self, position: PushPosition) -> asyncio.Future[None]:
        self.notes.append(position)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        return future

    def drop(self, endpoint: str) -> None:
        self.dropped.append(endpoint)

    def store(self) -> None:
        for future in self.waiting:
            future.set_result(None)
        self.waiting.clear()


def _acknowledge(transfer: Transfer, blocks: int) -> asyncio.Future[None] | None:
    """`blocks` more blocks of 1 KiB acknowledged, as `push._send_blocks` tells them;
    the write the push must wait for, if the last block made it wait."""
    wait = None
    for _ in range(blocks):
        transfer.offset += 1024
        assert transfer.checkpoint is not None
        wait = transfer.checkpoint(transfer)
        if wait is not None:
            return wait
    return wait


async def test_a_running_push_is_noted_every_note_blocks_and_at_its_stop() -> None:
    clock = [NOW]
    pushes, log = Pushes(lambda: clock[0]), Log()
    pushes.log = log
    size = 200 * 1024
    with pytest.raises(DeviceTimeout), pushes.pushing("ep", "img", size, resume=False,
                                                      digest="d1") as transfer:
        assert _acknowledge(transfer, NOTE_BLOCKS - 1) is None and log.notes == []
        assert _acknowledge(transfer, 1) is None
        assert [n.block for n in log.notes] == [NOTE_BLOCKS]  # not one write per block
        log.store()
        assert _acknowledge(transfer, 5) is None and len(log.notes) == 1
        clock[0] += NOTE_SECONDS  # a slow push: noted at its next block after 10 s
        assert _acknowledge(transfer, 1) is None
        assert [n.block for n in log.notes] == [NOTE_BLOCKS, NOTE_BLOCKS + 6]
        log.store()
        raise DeviceTimeout("silent")
    assert log.notes[-1] == PushPosition("ep", "img", "d1", size, 6, (NOTE_BLOCKS + 6) * 1024,
                                         clock[0])
    assert len(log.notes) == 2  # the stop was where the last note was: noted already


async def test_a_push_waits_for_its_position_to_be_stored_before_running_far_ahead() -> None:
    pushes, log = Pushes(lambda: NOW), Log()
    pushes.log = log
    with pushes.pushing("ep", "img", 200 * 1024, resume=False) as transfer:
        assert _acknowledge(transfer, NOTE_BLOCKS) is None  # noted, not stored yet
        wait = _acknowledge(transfer, NOTE_BLOCKS)
        assert wait is log.waiting[0] and transfer.block == 2 * NOTE_BLOCKS
        log.store()
        assert wait.done()
        assert _acknowledge(transfer, 1) is None  # the position it waited at, noted
        assert [n.block for n in log.notes] == [NOTE_BLOCKS, 2 * NOTE_BLOCKS + 1]
        transfer.offset = transfer.size  # delivered
    assert log.dropped == ["ep"] and len(pushes) == 0


async def test_a_push_that_starts_over_drops_its_position() -> None:
    pushes, log = Pushes(lambda: NOW), Log()
    pushes.log = log
    with pytest.raises(TemporaryError), pushes.pushing("ep", "img", 200 * 1024,
                                                       resume=False) as transfer:
        _acknowledge(transfer, NOTE_BLOCKS)
        log.store()
        transfer.offset = 0  # the device answered 4.08: from block 0 again
        assert _acknowledge(transfer, 1) is None
        assert log.dropped == ["ep"]  # a kill now must not resume at block 32
        raise TemporaryError("lost")
    assert [n.block for n in log.notes] == [NOTE_BLOCKS, 1]  # and the stop


def test_a_restored_position_is_resumed_only_for_the_same_image_digest_and_length() -> None:
    position = PushPosition("ep", "img", "d1", 5000, 5, 3072, NOW)  # block 6 of 512 B
    for package, digest, size, where in (("img", "d1", 5000, (3072, 5)),
                                         ("img", "d2", 5000, (0, 6)),
                                         ("other", "d1", 5000, (0, 6)),
                                         ("img", "d1", 4000, (0, 6))):
        pushes = Pushes(lambda: NOW)
        pushes.restore(position)
        assert len(pushes) == 1
        with pushes.pushing("ep", package, size, resume=True, digest=digest) as transfer:
            assert (transfer.offset, transfer.szx) == where, (package, digest, size)


async def test_a_push_dropped_while_running_keeps_nothing_when_it_stops() -> None:
    pushes, log = Pushes(lambda: NOW), Log()
    pushes.log = log
    with pytest.raises(TemporaryError), pushes.pushing("ep", "img", 200 * 1024,
                                                       resume=False) as transfer:
        _acknowledge(transfer, NOTE_BLOCKS)
        pushes.drop("ep")  # its update ended (retargeted) while it ran
        assert _acknowledge(transfer, NOTE_BLOCKS) is None and len(log.notes) == 1
        raise TemporaryError("lost")
    assert log.dropped == ["ep"] and len(log.notes) == 1
    assert len(pushes) == 0 and pushes.stop("ep") is None  # not even its stop
    with pushes.pushing("ep", "img", 200 * 1024, resume=True) as again:
        assert again.offset == 0
