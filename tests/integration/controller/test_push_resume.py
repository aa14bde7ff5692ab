"""A push cut short mid-transfer is resumed within seconds where the device left off, not
after the download deadline, and costs no retry (issue 8).

The device is a scripted push-only peer (/5/0/9 = 1) on a raw UDP socket that takes
Block1 PUTs of /5/0/0 as a conforming device does (in order; a block it already has is
taken again; 4.08 when it holds no partial transfer). At block 4 its link goes away: the
block is never answered and its socket closes, so the server's retransmission of it meets
a port unreachable and the push stops there. Three seconds later the device is back on
the same port. The engine asks for the push again a second after it stopped: it resumes
at block 4 (blocks 0-3 are not sent again), or, when the device lost what it held (it
restarted), the device answers 4.08 and the push starts again at block 0.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import controller_harness as harness
from aiocoap import Message
from aiocoap.numbers.codes import Code
from controller_harness import device_id, states, until
from scripted_device import START, ScriptedDevice

from reconciler.model.lwm2m import FW_PACKAGE, FW_STATE, FW_UPDATE, FW_UPDATE_RESULT
from reconciler.model.lwm2m import Path as LwPath
from reconciler.model.status import UpdateState

AWAY_AT = 4  # the block whose exchange the lost link cuts
AWAY_FOR = 3.0  # seconds the device's socket stays closed


class PushedDevice(ScriptedDevice):
    def __init__(self, *, forgets: bool) -> None:
        super().__init__({**START, LwPath(5, 0, 9): 1})  # push only
        self.forgets = forgets  # comes back without the partial transfer (restarted)
        self.data = bytearray()
        self.holding = False  # a partial transfer is held
        self.blocks: list[tuple[float, int]] = []  # (monotonic time, block number)
        self.back_at: float | None = None
        self.away: asyncio.Task[None] | None = None

    def answer(self, message: Message, path: LwPath) -> Message | None:
        if path == FW_PACKAGE and message.code == Code.PUT:
            return self._block(message)
        if path == FW_UPDATE and message.code == Code.POST:
            self.values.update({LwPath(3, 0, 3): "2.0", FW_STATE: 0, FW_UPDATE_RESULT: 1})
            asyncio.get_running_loop().call_soon(self.register, harness.endpoint(0))
        return super().answer(message, path)

    def _block(self, message: Message) -> Message | None:
        num, more, szx = message.opt.block1
        self.blocks.append((time.monotonic(), num))
        if num == AWAY_AT and self.away is None:
            self.away = asyncio.get_running_loop().create_task(self._go_away())
            return None  # the link is gone: never answered
        offset = num << (szx + 4)
        if num == 0:
            self.data, self.holding = bytearray(), True
            self.values[FW_STATE] = 1
        elif not self.holding or offset > len(self.data):
            return self.reply(message, Code.REQUEST_ENTITY_INCOMPLETE)
        del self.data[offset:]
        self.data += message.payload
        if more:
            reply = self.reply(message, Code.CONTINUE)
            reply.opt.block1 = (num, True, szx)
            return reply
        self.holding = False
        self.values[FW_STATE] = 2  # Downloaded
        reply = self.reply(message, Code.CHANGED)
        reply.opt.block1 = (num, False, szx)
        return reply

    async def _go_away(self) -> None:
        """Close the socket (the server's next copy of the block gets a port unreachable)
        and open it again on the same port after AWAY_FOR seconds."""
        address = self.transport.get_extra_info("sockname")
        remote = self.transport.get_extra_info("peername")
        self.transport.close()
        await asyncio.sleep(AWAY_FOR)
        if self.forgets:
            self.data, self.holding = bytearray(), False
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=address,
                                            remote_addr=remote)
        self.back_at = time.monotonic()


async def push_through_a_lost_link(tmp_path: Path, *, forgets: bool) -> PushedDevice:
    """One update of a push-only device whose link goes away at block AWAY_AT; the device,
    when it ended Current."""
    repo = harness.DesiredRepo(tmp_path / "repo", count=1, target="2.0", image_size=8192)
    settings = harness.settings_for(repo, tmp_path / "s.db", min_download_time=60.0)
    async with harness.serving(settings) as running:
        loop = asyncio.get_running_loop()
        _, device = await loop.create_datagram_endpoint(
            lambda: PushedDevice(forgets=forgets), remote_addr=("127.0.0.1", running.coap_port))
        try:
            device.register(harness.endpoint(0))
            await asyncio.wait_for(device.registered.wait(), 5)
            ctl = running.controller
            await until(ctl, lambda: states(ctl)[device_id(0)] is UpdateState.CURRENT, 30)
            record = ctl.decider.index.get(device_id(0))
            assert record is not None
            assert (record.attempts, record.retries_left) == (1, ctl.settings.engine.max_retries)
            # resumed (maybe more than once: a resumption while it is still away stops
            # at once on the port unreachable), within the cap
            assert 1 <= record.resumes <= ctl.settings.engine.max_push_resumes
        finally:
            device.transport.close()
    return device


async def test_a_push_cut_at_a_block_resumes_there_within_seconds_without_a_retry(
        tmp_path: Path) -> None:
    device = await push_through_a_lost_link(tmp_path, forgets=False)
    numbers = [num for _, num in device.blocks]
    back = _first_after_return(device)
    assert numbers[:AWAY_AT + 1] == list(range(AWAY_AT + 1))
    # back: resumed at the block it stopped at, no block before it again, the rest once
    assert numbers[back:] == list(range(AWAY_AT, numbers[-1] + 1)), numbers
    assert numbers[AWAY_AT + 1:back] == [], numbers  # nothing reached it while away
    # resumptions back off 1, 2, 4 s: the one that reaches it within seconds of its
    # return, far from the download deadline (60 s here, ~19 min for 64 KiB by default)
    assert device.back_at is not None and device.blocks[back][0] - device.back_at < 4.5


async def test_a_device_that_lost_its_partial_transfer_gets_the_push_from_block_0(
        tmp_path: Path) -> None:
    device = await push_through_a_lost_link(tmp_path, forgets=True)
    numbers = [num for _, num in device.blocks]
    first_back = _first_after_return(device)
    last = numbers[-1]
    # resumed at the block it stopped at, refused with 4.08, then the whole package
    assert numbers[first_back:] == [AWAY_AT, *range(last + 1)], numbers
    image = tmp_path / "repo" / "images" / harness.COLLECTION / "fw-2.0.bin"
    assert bytes(device.data) == image.read_bytes()


def _first_after_return(device: PushedDevice) -> int:
    """The index of the first block the device received after it came back."""
    assert device.back_at is not None
    return next(i for i, (at, _) in enumerate(device.blocks) if at >= device.back_at)
