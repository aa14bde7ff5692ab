"""The server's pushes of firmware packages to /5/0/0: which run, how far each came, and
how each endpoint's latest push ended when it ended early.

A push cut short by loss or silence (DeviceTimeout or TemporaryError mid-transfer) or by
the device itself leaves its `push.Transfer`, the blocks the device acknowledged, and a
`PushStop`. The server `cut`s a running push at once when the device registers again
(a reboot, a new address: nothing answers where the blocks go), updates from another
address or leaves (de-registers, expires), rather than retransmit into the void until
the exchange times out. The engine reads the stop as observed state (`Delta.push_stop`,
as `deliveries.py`'s delivery time) and asks for the push again after a short delay,
once the device can be reached; the next push of the same package (same image id,
digest and length) to that endpoint continues from the transfer instead of block 0
(`push_firmware` starts over when the device answers 4.08).
A push the device refused (an error code) or that was cancelled leaves nothing to resume.

How far a running push came also goes to a `PositionLog` (the controller's, which writes
it to the store in batches), so that after our restart the push resumes there too
(`restore`): noted every `NOTE_BLOCKS` blocks acknowledged or, for a slow push, on the
first block acknowledged `NOTE_SECONDS` after the last note, and always when it stops;
dropped when it delivered, was refused, or starts over. Bounded writes: at most one a
push per `NOTE_BLOCKS` blocks or `NOTE_SECONDS`, however many pushes run. Bounded lag: a
push does not run more than `NOTE_BLOCKS` blocks past a note the log has not stored yet,
so what a kill -9 leaves is at most about 2 x `NOTE_BLOCKS` blocks behind the device.
Behind is safe: the device takes a block it already has again (RFC 7959 places a Block1
payload by its number; our simulator and conforming devices do), or answers 4.08 (RFC
7959 §2.9.2: blocks not in the order it needs) and the push starts over at block 0, as
it did before positions were kept.

What is kept for an endpoint (its transfer to resume, its stop, its logged position)
lives as long as its update: `drop` (the server's `revoke_firmware`, called when the
update ends in any way, its target changes or the device leaves the desired state) frees
it, and a push that starts over replaces it. A device that leaves (de-registers, expires)
keeps it, so a push its leaving cut resumes at its block when it registers again; one
that never does ends its update at the phase deadline, which drops it. So memory is
bounded by the updates under way, not by every device ever pushed to.
A push is a tracked operation of this layer, not of a reconcile worker: the executor
starts it (`DeviceClient.start_push`, which reserves the endpoint at once so the engine
sees it running) and returns; `detached` runs it in its own task once one of `limit`
slots is free (the rest wait their turn in order), and how it ends is observed state: a
delivery (`deliveries.py`), a stop (loss, silence, or refused: `PushStop.refused`), or
neither (the device went to sleep or away). Subscribers (the controller, which looks at
the device) hear of every end. Owned by `Lwm2mServer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from reconciler.errors import (
    DeviceMoved,
    DeviceNotRegistered,
    DeviceRequestFailed,
    FotaError,
    TemporaryError,
    WaitingError,
)
from reconciler.lwm2m.push import Transfer
from reconciler.model.lwm2m import PushPosition
from reconciler.model.lwm2m import RegistrationEventKind as Kind
from reconciler.model.observed import PushStop

log = logging.getLogger(__name__)

Subscriber = Callable[[str], None]  # the endpoint whose push ended
# Pushes sending at once; more wait for a slot. Each has one exchange in flight, so this
# bounds the server's share of the link and the devices' blocks in memory, not its CPU.
# Above the rollouts the loss benchmark runs (100 devices at once): at 64, its devices
# 65-100 waited ~5 s for a slot, the wait the reconcile workers used to impose.
MAX_PUSHES = 256
# What cuts a push short without the device refusing it: loss, silence, a new address or
# registration, the device leaving.
INTERRUPTIONS = (TemporaryError, DeviceMoved, DeviceNotRegistered)
# A running push's position goes to the log every NOTE_BLOCKS blocks (a fast push: 32
# KiB of 1 KiB blocks sent again at most after a kill -9, about one note every 30 ms on
# loopback), or at its first block NOTE_SECONDS after the last note (a slow one: at one
# block a second over NB-IoT, ten blocks again at most; 10,000 such pushes are 1,000
# rows a second, written in batches).
NOTE_BLOCKS = 32
NOTE_SECONDS = 10.0


class PositionLog(Protocol):
    """Where positions go to outlive this process (`controller.push_log`)."""

    def note(self, position: PushPosition) -> asyncio.Future[None]:
        """Record `position` (replacing the endpoint's last); done once it is stored
        (or could not be: a position is worth a resend, never a stuck push)."""

    def drop(self, endpoint: str) -> None:
        """The endpoint's position is of no use any more."""


@dataclass(frozen=True, slots=True)
class _Resumable:
    package: str  # what was pushed (the image id), so a point is never used for another
    digest: str  # and its sha256: an image id written again for other bytes is another
    transfer: Transfer


class _Noted:
    """A running push's last position given to the log, and its write."""

    __slots__ = ("at", "offset", "stored")

    def __init__(self, offset: int, at: float) -> None:
        self.offset, self.at = offset, at
        self.stored: asyncio.Future[None] | None = None


class Pushes:
    def __init__(self, clock: Callable[[], float], limit: int = MAX_PUSHES) -> None:
        self._clock = clock
        self.slots = asyncio.Semaphore(limit)  # taken by `detached` for the transfer
        self._running: set[str] = set()  # reserved: waiting for a slot, or sending
        self._sending: dict[str, Transfer] = {}  # the running pushes' transfers (to cut)
        self._resumable: dict[str, _Resumable] = {}
        self._stops: dict[str, PushStop] = {}
        self._logged: set[str] = set()  # endpoints the log holds a position of
        self._dropped: set[str] = set()  # running pushes whose update ended meanwhile
        self._subscribers: list[Subscriber] = []
        self.log: PositionLog | None = None  # set by the controller (else: memory only)

    def __len__(self) -> int:
        """Endpoints something is kept for: a transfer to resume, a stop, a position
        logged (each freed by `drop` when the update ends)."""
        return len(self._resumable.keys() | self._stops.keys() | self._logged)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def running(self, endpoint: str) -> bool:
        return endpoint in self._running

    def reserve(self, endpoint: str) -> None:
        """A push to `endpoint` is under way from now (before its task runs), and no
        other may start until it ends; what an earlier one left as its stop is history."""
        if endpoint in self._running:
            raise TemporaryError(f"{endpoint}: a push to it is already running")
        self._running.add(endpoint)
        self._stops.pop(endpoint, None)
        self._dropped.discard(endpoint)  # a drop from now on is this push's

    def ended(self, endpoint: str) -> None:
        """The push to `endpoint` is over, however it ended: subscribers look again."""
        self._running.discard(endpoint)
        self._dropped.discard(endpoint)
        self._tell(endpoint)

    def cut(self, endpoint: str, error: FotaError) -> bool:
        """End the push sending to `endpoint` at once with `error` (an interruption: it
        stops where the device left off); whether one was sending."""
        transfer = self._sending.get(endpoint)
        if transfer is None or transfer.cut is None or transfer.cut.done():
            return False
        transfer.cut.set_result(error)
        return True

    def stop(self, endpoint: str) -> PushStop | None:
        """How the endpoint's latest push ended early, or None (none did, or it ended)."""
        return self._stops.get(endpoint)

    def restore(self, position: PushPosition) -> None:
        """After our restart: the push to `position.endpoint` stood there when the last
        run of this server stopped (the log's record); the next resumed push of the same
        image continues from it."""
        transfer = Transfer(position.size, position.szx, position.offset)
        self._resumable[position.endpoint] = _Resumable(position.image_id, position.digest,
                                                        transfer)
        self._logged.add(position.endpoint)

    @contextlib.contextmanager
    def pushing(self, endpoint: str, package: str, size: int, *, resume: bool,
                reserved: bool = False, digest: str = "") -> Iterator[Transfer]:
        """A push of `package` (`size` bytes, sha256 `digest`) to `endpoint` for the
        body: the transfer to continue (with `resume`, where the last push of the same
        package stopped, in this process or, restored, before our restart; else from
        block 0), recorded as it goes and as it ends. `reserved`: `reserve` was called."""
        if not reserved:
            self.reserve(endpoint)
        kept = self._resumable.pop(endpoint, None)
        same = (kept is not None and kept.package == package and kept.digest == digest
                and kept.transfer.size == size)
        transfer = kept.transfer if resume and same and kept is not None else Transfer(size)
        if resume and transfer.offset == 0:
            log.info("%s: no acknowledged block to resume from (%s): pushing from block 0",
                     endpoint, "another package" if kept is not None and not same
                     else "none recorded")
        if transfer.offset == 0:
            self._unlog(endpoint)  # a position there is of another push: not after a kill
        noted = _Noted(transfer.offset, self._clock())
        transfer.checkpoint = lambda t: self._checkpoint(endpoint, package, digest, t, noted)
        self._sending[endpoint] = transfer
        try:
            yield transfer
        except INTERRUPTIONS as exc:
            if endpoint not in self._dropped:  # else its update ended: nothing to keep
                self._resumable[endpoint] = _Resumable(package, digest, transfer)
                self._note(endpoint, package, digest, transfer, noted)  # always at a stop
                self._stop(endpoint, transfer, str(exc), refused=False)
            raise
        except DeviceRequestFailed as exc:
            self._unlog(endpoint)  # refused: nothing to resume
            if endpoint not in self._dropped:
                self._stop(endpoint, transfer, str(exc), refused=True)
            raise
        else:
            self._unlog(endpoint)  # delivered
        finally:
            transfer.checkpoint = None
            self._running.discard(endpoint)
            self._sending.pop(endpoint, None)
            self._dropped.discard(endpoint)

    def _checkpoint(self, endpoint: str, package: str, digest: str, transfer: Transfer,
                    noted: _Noted) -> asyncio.Future[None] | None:
        """After each block the device acknowledged: note the position when it is due;
        the write to wait for first when the push ran `NOTE_BLOCKS` past one not yet
        stored (so a kill -9 leaves the store at most ~2 x NOTE_BLOCKS behind)."""
        if self.log is None or endpoint in self._dropped:
            return None
        if transfer.offset < noted.offset:  # started over (4.08): that note is stale
            noted.offset, noted.stored = 0, None
            self._unlog(endpoint)
        ahead = (transfer.offset - noted.offset) >> (transfer.szx + 4)
        if ahead >= NOTE_BLOCKS and noted.stored is not None and not noted.stored.done():
            return noted.stored
        if ahead >= NOTE_BLOCKS or (ahead > 0 and self._clock() - noted.at >= NOTE_SECONDS):
            self._note(endpoint, package, digest, transfer, noted)
        return None

    def _note(self, endpoint: str, package: str, digest: str, transfer: Transfer,
              noted: _Noted) -> None:
        if self.log is None or transfer.offset == 0 or transfer.offset >= transfer.size:
            return
        if transfer.offset == noted.offset and endpoint in self._logged:
            return  # noted already (a stop right after a note)
        now = self._clock()
        noted.offset, noted.at = transfer.offset, now
        noted.stored = self.log.note(PushPosition(endpoint, package, digest, transfer.size,
                                                  transfer.szx, transfer.offset, now))
        self._logged.add(endpoint)

    def _unlog(self, endpoint: str) -> None:
        if endpoint in self._logged:
            self._logged.discard(endpoint)
            if self.log is not None:
                self.log.drop(endpoint)

    def _stop(self, endpoint: str, transfer: Transfer, reason: str, *, refused: bool) -> None:
        self._stops[endpoint] = PushStop(self._clock(), transfer.block, transfer.blocks,
                                         reason, refused)

    def _tell(self, endpoint: str) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(endpoint)
            except Exception:
                log.exception("push subscriber failed on %s", endpoint)

    def drop(self, endpoint: str) -> None:
        """The endpoint's update ended (in any way, or its target changed, or it left
        the desired state): nothing of its pushes is kept, in memory or in the log, and
        a push still running keeps nothing when it ends."""
        self._resumable.pop(endpoint, None)
        self._stops.pop(endpoint, None)
        self._unlog(endpoint)
        if endpoint in self._running:
            self._dropped.add(endpoint)

    def registration(self, endpoint: str, kind: Kind) -> None:
        """The registration table's news of `endpoint`: a Register (a reboot, a new
        address) or its leaving cuts a running push, which records where it was cut.
        Leaving keeps what is kept: the device may come back within its update's
        deadline and resume there (the update's end drops it)."""
        if kind is Kind.REGISTERED:
            self.cut(endpoint, DeviceMoved(f"{endpoint}: the device registered again "
                                           f"during the push"))
        elif kind is not Kind.UPDATED:
            self.cut(endpoint, DeviceNotRegistered(f"{endpoint}: the device left during "
                                                   f"the push ({kind.value})"))

    def moved(self, endpoint: str) -> None:
        """`endpoint` speaks from another address now: no answer can come to the old one."""
        self.cut(endpoint, DeviceMoved(f"{endpoint}: the device speaks from another "
                                       f"address; no answer can come to the old one"))


async def detached(pushes: Pushes, endpoint: str, push: Callable[[], Awaitable[None]]) -> None:
    """Run one push (`push()` enters `pushes.pushing(..., reserved=True)`) in the task
    that awaits this, once a slot is free. Never raises: how it ended is observed state
    (`Pushes.stop`, `Deliveries`), told to the subscribers in any case."""
    try:
        async with pushes.slots:
            await push()
    except (*INTERRUPTIONS, DeviceRequestFailed) as exc:
        stop = pushes.stop(endpoint)
        log.info("%s: the push stopped at block %s of %s (%s: %s)", endpoint,
                 stop.block if stop else "?", stop.blocks if stop else "?",
                 type(exc).__name__, exc)
    except WaitingError as exc:
        log.info("%s: the push did not start: %s", endpoint, exc)
    except Exception:
        log.exception("%s: the push failed", endpoint)
    finally:
        pushes.ended(endpoint)
