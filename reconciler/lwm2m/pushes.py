"""The server's pushes of firmware packages to /5/0/0: which run, how far each came, and
how each endpoint's latest push ended when it ended early.

A push cut short by loss or silence (DeviceTimeout or TemporaryError mid-transfer) or by
the device itself leaves its `push.Transfer`, the blocks the device acknowledged, and a
`PushStop`. The server `cut`s a running push at once when the device registers again
(a reboot, a new address: nothing answers where the blocks go), updates from another
address or leaves (de-registers, expires), rather than retransmit into the void until
the exchange times out. The engine reads the stop as observed state (`Delta.push_stop`,
as `deliveries.py`'s delivery time) and asks for the push again after a short delay,
once the device can be reached; the next push of the same package to that endpoint
continues from the transfer instead of block 0 (`push_firmware` starts over when the
device answers 4.08).
A push the device refused (an error code) or that was cancelled leaves nothing to resume.

One entry per endpoint that a push went to, dropped when the endpoint de-registers or
expires (a push running then records where it was cut, so the device resumes there if
it comes back: a few numbers, until its next push): bounded by the devices of the
desired state, the only ones pushed to.
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

from reconciler.errors import (
    DeviceMoved,
    DeviceNotRegistered,
    DeviceRequestFailed,
    FotaError,
    TemporaryError,
    WaitingError,
)
from reconciler.lwm2m.push import Transfer
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


@dataclass(frozen=True, slots=True)
class _Resumable:
    package: str  # what was pushed (the image id), so a point is never used for another
    transfer: Transfer


class Pushes:
    def __init__(self, clock: Callable[[], float], limit: int = MAX_PUSHES) -> None:
        self._clock = clock
        self.slots = asyncio.Semaphore(limit)  # taken by `detached` for the transfer
        self._running: set[str] = set()  # reserved: waiting for a slot, or sending
        self._sending: dict[str, Transfer] = {}  # the running pushes' transfers (to cut)
        self._resumable: dict[str, _Resumable] = {}
        self._stops: dict[str, PushStop] = {}
        self._subscribers: list[Subscriber] = []

    def __len__(self) -> int:
        return len(self._resumable) + len(self._stops)

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

    def ended(self, endpoint: str) -> None:
        """The push to `endpoint` is over, however it ended: subscribers look again."""
        self._running.discard(endpoint)
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

    @contextlib.contextmanager
    def pushing(self, endpoint: str, package: str, size: int, *, resume: bool,
                reserved: bool = False) -> Iterator[Transfer]:
        """A push of `package` (`size` bytes) to `endpoint` for the body: the transfer to
        continue (with `resume`, where the last push of the same package stopped; else
        from block 0), recorded as it ends. `reserved`: `reserve` was called for it."""
        if not reserved:
            self.reserve(endpoint)
        kept = self._resumable.pop(endpoint, None)
        same = kept is not None and kept.package == package and kept.transfer.size == size
        transfer = kept.transfer if resume and same and kept is not None else Transfer(size)
        if resume and transfer.offset == 0:
            log.info("%s: no acknowledged block to resume from (%s): pushing from block 0",
                     endpoint, "another package" if kept is not None and not same
                     else "none recorded since this server started")
        self._sending[endpoint] = transfer
        try:
            yield transfer
        except INTERRUPTIONS as exc:
            self._resumable[endpoint] = _Resumable(package, transfer)
            self._stop(endpoint, transfer, str(exc), refused=False)
            raise
        except DeviceRequestFailed as exc:
            self._stop(endpoint, transfer, str(exc), refused=True)
            raise
        finally:
            self._running.discard(endpoint)
            self._sending.pop(endpoint, None)

    def _stop(self, endpoint: str, transfer: Transfer, reason: str, *, refused: bool) -> None:
        self._stops[endpoint] = PushStop(self._clock(), transfer.block, transfer.blocks,
                                         reason, refused)

    def _tell(self, endpoint: str) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(endpoint)
            except Exception:
                log.exception("push subscriber failed on %s", endpoint)

    def forget(self, endpoint: str) -> None:
        """The endpoint went away: nothing of its pushes is kept."""
        self._resumable.pop(endpoint, None)
        self._stops.pop(endpoint, None)

    def registration(self, endpoint: str, kind: Kind) -> None:
        """The registration table's news of `endpoint`: a Register (a reboot, a new
        address) or its leaving cuts a running push; leaving drops what is kept (the
        push cut records where it was cut, after this)."""
        if kind is Kind.REGISTERED:
            self.cut(endpoint, DeviceMoved(f"{endpoint}: the device registered again "
                                           f"during the push"))
        elif kind is not Kind.UPDATED:
            self.cut(endpoint, DeviceNotRegistered(f"{endpoint}: the device left during "
                                                   f"the push ({kind.value})"))
            self.forget(endpoint)

    def moved(self, endpoint: str) -> None:
        """`endpoint` speaks from another address now: no answer comes to the old one."""
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
