"""`LoopBatchedHandler`: lines logged during one event-loop pass are written with one
call right after it, in order; without a loop every line is written at once."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import pytest

from reconciler.serve.loghandler import LoopBatchedHandler


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, CountingStream]]:
    stream = CountingStream()
    handler = LoopBatchedHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("test.loghandler")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(handler)
    yield logger, stream
    logger.removeHandler(handler)
    handler.close()


async def test_lines_of_one_loop_pass_are_written_together_after_it(
        logged: tuple[logging.Logger, CountingStream]) -> None:
    logger, stream = logged
    for n in range(3):
        logger.info("device %d", n)
    assert stream.getvalue() == ""  # not yet: the pass is not over
    await asyncio.sleep(0)  # one loop pass: the scheduled flush runs
    assert stream.getvalue() == "device 0\ndevice 1\ndevice 2\n"
    assert stream.writes == 1
    logger.info("device 3")
    await asyncio.sleep(0)
    assert stream.getvalue().endswith("device 2\ndevice 3\n") and stream.writes == 2


async def test_a_line_from_a_thread_without_a_loop_writes_everything_in_order(
        logged: tuple[logging.Logger, CountingStream]) -> None:
    logger, stream = logged
    logger.info("on the loop")
    await asyncio.to_thread(logger.info, "in a worker thread")
    assert stream.getvalue() == "on the loop\nin a worker thread\n"


def test_without_a_loop_every_line_is_written_at_once(
        logged: tuple[logging.Logger, CountingStream]) -> None:
    logger, stream = logged
    logger.info("first")
    assert stream.getvalue() == "first\n"
    logger.warning("second")
    assert stream.getvalue() == "first\nsecond\n" and stream.writes == 2
