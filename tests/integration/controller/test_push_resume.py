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

The device itself can end a push too (issue 8): it registers again from a new port at
that block (a NAT rebinding: its old address goes silent), or de-registers and comes back
seconds later. The server cuts the push at once, sends nothing while the device is away,
and the engine resumes it at that block within seconds of the new Register, instead of
retransmitting into the void until the exchange times out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import controller_harness as harness
import pytest
from aiocoap import CON, Message
from aiocoap.numbers.codes import Code
from controller_harness import device_id, states, until
from scripted_device import START, ScriptedDevice

from reconciler.model.lwm2m import FW_PACKAGE, FW_STATE, FW_UPDATE, FW_UPDATE_RESULT
from reconciler.model.lwm2m import Path as LwPath
from reconciler.model.status import UpdateState

AWAY_AT = 4  # the block whose exchange the lost link cuts
AWAY_FOR = 3.0  # seconds the device's socket stays closed
LEFT_FOR = 4.0  # seconds a device that de-registered stays away


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


class LeavingDevice(PushedDevice):
    """At block AWAY_AT the device ends the push itself. `moves`: its old socket goes
    silent (kept open: nothing answers there, no port unreachable either) and it registers
    again from a new port at once. `reboots`: it restarts, Object 5 Idle and the partial
    transfer lost, and registers again from the same port at once. Else it de-registers,
    ignores everything for LEFT_FOR seconds and registers again from the same port.
    Requests that reach it while it is away are recorded (`while_away`)."""

    def __init__(self, *, moves: bool = False, reboots: bool = False) -> None:
        super().__init__(forgets=reboots)
        self.moves, self.reboots = moves, reboots
        self.location: tuple[str, ...] = ()
        self.gone = False
        self.while_away: list[str] = []
        self.old: Any = None  # the silent socket it moved from

    def datagram_received(self, data: bytes, addr: Any) -> None:
        message = Message.decode(data)
        if message.code == Code.CREATED and message.opt.location_path:
            self.location = tuple(message.opt.location_path)
        if self.gone and message.code.is_request():
            self.while_away.append(f"{message.code} {'/'.join(message.opt.uri_path)}")
            return
        super().datagram_received(data, addr)

    async def _go_away(self) -> None:
        loop = asyncio.get_running_loop()
        if self.reboots:
            self.data, self.holding = bytearray(), False
            self.values.update({FW_STATE: 0, FW_UPDATE_RESULT: 0})
        elif self.moves:
            self.old = self.transport
            self.old.set_protocol(asyncio.DatagramProtocol())  # its old address: silent
            await loop.create_datagram_endpoint(
                lambda: self, remote_addr=self.old.get_extra_info("peername"))
        else:
            self.gone = True
            self._mid += 1
            self.transport.sendto(Message(
                _mtype=CON, _mid=self._mid, _token=b"dereg", code=Code.DELETE,
                uri_path=self.location).encode())
            await asyncio.sleep(LEFT_FOR)
            self.gone = False
        self.back_at = time.monotonic()
        self.register(harness.endpoint(0))


async def push_through_a_lost_link(
        tmp_path: Path, *, forgets: bool = False,
        make: Callable[[], PushedDevice] | None = None) -> PushedDevice:
    """One update of a push-only device whose link goes away at block AWAY_AT (or that
    `make` makes); the device, when it ended Current."""
    repo = harness.DesiredRepo(tmp_path / "repo", count=1, target="2.0", image_size=8192)
    settings = harness.settings_for(repo, tmp_path / "s.db", min_download_time=60.0)
    async with harness.serving(settings) as running:
        loop = asyncio.get_running_loop()
        _, device = await loop.create_datagram_endpoint(
            make or (lambda: PushedDevice(forgets=forgets)),
            remote_addr=("127.0.0.1", running.coap_port))
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
            if isinstance(device, LeavingDevice) and device.old is not None:
                device.old.close()
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


@pytest.mark.parametrize("moves", [True, False], ids=["new-address", "de-registered"])
async def test_a_device_that_registers_again_mid_push_gets_it_resumed_at_once(
        tmp_path: Path, moves: bool) -> None:
    device = await push_through_a_lost_link(tmp_path, make=lambda: LeavingDevice(moves=moves))
    assert isinstance(device, LeavingDevice)
    numbers = [num for _, num in device.blocks]
    back = _first_after_return(device)
    # cut at once: nothing went to a device that had left (its old address is silent,
    # so a retransmission there would not show: the resumption's timing does)
    assert device.while_away == []
    assert numbers[:AWAY_AT + 1] == list(range(AWAY_AT + 1))
    assert numbers[back:] == list(range(AWAY_AT, numbers[-1] + 1)), numbers
    # within seconds of its Register (the read of its state, then the push), not after
    # the exchange's retransmissions to where it was (tens of seconds) or the deadline
    assert device.back_at is not None and device.blocks[back][0] - device.back_at < 3.0


async def test_a_device_that_reboots_mid_push_gets_it_again_from_block_0_without_a_retry(
        tmp_path: Path) -> None:
    # its Register cuts the push (else the next copy of block 4 meets a 4.08 and the
    # attempt fails, a retry spent): resumed at block 4, 4.08, then the whole package
    device = await push_through_a_lost_link(tmp_path, make=lambda: LeavingDevice(reboots=True))
    numbers = [num for _, num in device.blocks]
    back = _first_after_return(device)
    assert numbers[back:] == [AWAY_AT, *range(numbers[-1] + 1)], numbers
    assert device.back_at is not None and device.blocks[back][0] - device.back_at < 3.0
    image = tmp_path / "repo" / "images" / harness.COLLECTION / "fw-2.0.bin"
    assert bytes(device.data) == image.read_bytes()


LIFETIME = 3  # seconds: the registration runs out in the middle of the push


class ExpiringDevice(PushedDevice):
    """Registers with a 3 s lifetime and, at block AWAY_AT, goes silent: it answers
    nothing and sends no Update, its socket open (no port unreachable either), so its
    registration expires while the server still retransmits that block. It keeps its
    partial transfer; the test brings it back (`come_back`). Requests that reach it
    while silent are recorded (`while_away`)."""

    def __init__(self, n: int = 0) -> None:
        super().__init__(forgets=False)
        self.endpoint = harness.endpoint(n)
        self.lifetime = LIFETIME
        self.silent = False
        self.while_away: list[tuple[float, str]] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.silent:
            message = Message.decode(data)
            if message.code.is_request():
                self.while_away.append((time.monotonic(), "/".join(message.opt.uri_path)))
            return
        super().datagram_received(data, addr)

    async def _go_away(self) -> None:
        self.silent = True

    def come_back(self) -> None:
        """Registers again from the same port (for longer: the rest of the update must
        not race another expiry)."""
        self.silent, self.lifetime = False, 300
        self.back_at = time.monotonic()
        self.register(self.endpoint)


async def test_a_registration_that_expires_mid_push_cuts_it_and_resumes_at_its_block(
        tmp_path: Path) -> None:
    """Over real sockets: the server's RFC 7252 retransmissions (fixed timers, 2-3 s
    and doubling: ~93 s before it gives up) would outlive the registration; the expiry
    cuts the push at once and it is kept, so that when the device registers again the
    push resumes at the block it stopped at, within seconds, without a retry spent."""
    repo = harness.DesiredRepo(tmp_path / "repo", count=1, target="2.0", image_size=8192)
    settings = harness.settings_for(repo, tmp_path / "s.db", min_download_time=60.0,
                                    coap_rto="fixed")
    async with harness.serving(settings) as running:
        loop = asyncio.get_running_loop()
        _, device = await loop.create_datagram_endpoint(
            ExpiringDevice, remote_addr=("127.0.0.1", running.coap_port))
        try:
            ctl = running.controller
            pushes = ctl.server.pushes
            endpoint = harness.endpoint(0)
            ended = asyncio.Event()  # the push ended (its subscribers are told)
            pushes.subscribe(lambda _endpoint: ended.set())
            registered_at = time.monotonic()
            device.register(endpoint)
            await asyncio.wait_for(device.registered.wait(), 5)
            await asyncio.wait_for(ended.wait(), 15)
            cut_at = time.monotonic()
            assert ctl.server.registration(endpoint) is None
            stop = pushes.stop(endpoint)
            assert stop is not None and "expired" in stop.reason and not stop.refused
            assert stop.block == AWAY_AT
            # cut at the expiry (the registry's sweep runs every second), not after
            # the exchange's retransmissions
            assert cut_at - registered_at < LIFETIME + 2.5
            assert len(pushes) == 1  # kept, to resume from
            await ctl.push_log.written()  # and in the state file, for a restart
            assert [p.block for p in ctl.store.push_positions()] == [AWAY_AT]
            device.come_back()
            await until(ctl, lambda: states(ctl)[device_id(0)] is UpdateState.CURRENT, 30)
            record = ctl.decider.index.get(device_id(0))
            assert record is not None
            assert (record.attempts, record.retries_left, record.resumes) == (
                1, ctl.settings.engine.max_retries, 1)
            await ctl.push_log.written()
            assert len(pushes) == 0 and ctl.store.push_positions() == []  # delivered
        finally:
            device.transport.close()
    numbers = [num for _, num in device.blocks]
    back = _first_after_return(device)
    assert numbers[:AWAY_AT + 1] == list(range(AWAY_AT + 1))
    assert numbers[back:] == list(range(AWAY_AT, numbers[-1] + 1)), numbers
    # while away only the server's copies of block AWAY_AT came, none after the cut
    assert all(at <= cut_at for at, _ in device.while_away), device.while_away
    assert device.back_at is not None and device.blocks[back][0] - device.back_at < 3.0
    image = tmp_path / "repo" / "images" / harness.COLLECTION / "fw-2.0.bin"
    assert bytes(device.data) == image.read_bytes()


async def test_what_pushes_keep_is_freed_when_their_updates_end(tmp_path: Path) -> None:
    """Two pushes cut by their devices' expiry are kept (in memory and in the state
    file) while their updates are under way. One device leaves the desired state, the
    other's target becomes the version it runs (its update ends): nothing is kept for
    either any more, so what pushes keep is bounded by the updates under way."""
    repo = harness.DesiredRepo(tmp_path / "repo", count=2, target="2.0", image_size=8192)
    settings = harness.settings_for(repo, tmp_path / "s.db", min_download_time=60.0,
                                    coap_rto="fixed")
    async with harness.serving(settings) as running:
        ctl = running.controller
        pushes = ctl.server.pushes
        ended: set[str] = set()
        both = asyncio.Event()

        def told(endpoint: str) -> None:
            ended.add(endpoint)
            if len(ended) == 2:
                both.set()

        pushes.subscribe(told)
        loop = asyncio.get_running_loop()
        devices = []
        for n in range(2):
            _, device = await loop.create_datagram_endpoint(
                lambda n=n: ExpiringDevice(n), remote_addr=("127.0.0.1", running.coap_port))
            devices.append(device)
        try:
            for device in devices:
                device.register(device.endpoint)
            await asyncio.wait_for(both.wait(), 20)  # both cut at their expiry
            await ctl.push_log.written()
            assert len(pushes) == 2
            assert [p.block for p in ctl.store.push_positions()] == [AWAY_AT, AWAY_AT]
            repo.count = 1  # d000001 leaves the desired state
            repo.set_target("1.0")  # d000000 runs 1.0: its update ends
            await until(ctl, lambda: len(pushes) == 0, 20)
            await ctl.push_log.written()
            assert ctl.store.push_positions() == []
        finally:
            for device in devices:
                device.transport.close()


async def test_a_device_that_never_comes_back_is_freed_when_its_update_times_out(
        tmp_path: Path) -> None:
    """The registration is gone for good: the device expired mid-push and never
    registers again. Its update times out at the download deadline (6 s here), which
    ends it: what its push kept goes then, not never."""
    repo = harness.DesiredRepo(tmp_path / "repo", count=1, target="2.0", image_size=8192)
    settings = harness.settings_for(repo, tmp_path / "s.db", min_download_time=6.0,
                                    coap_rto="fixed")
    async with harness.serving(settings) as running:
        ctl = running.controller
        pushes = ctl.server.pushes
        ended = asyncio.Event()
        pushes.subscribe(lambda _endpoint: ended.set())
        _, device = await asyncio.get_running_loop().create_datagram_endpoint(
            ExpiringDevice, remote_addr=("127.0.0.1", running.coap_port))
        try:
            device.register(device.endpoint)
            await asyncio.wait_for(ended.wait(), 15)  # cut at its expiry, kept
            assert len(pushes) == 1
            await until(ctl, lambda: states(ctl)[device_id(0)] is UpdateState.TIMED_OUT, 20)
            assert len(pushes) == 0
            await ctl.push_log.written()
            assert ctl.store.push_positions() == []
        finally:
            device.transport.close()
