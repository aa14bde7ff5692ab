"""The server's pushes of firmware packages to /5/0/0: which run, how far each came, and
how each endpoint's latest push ended when it ended early.

A push cut short by loss or silence (DeviceTimeout or TemporaryError mid-transfer, or the
device seen at another address) leaves its `push.Transfer`, the blocks the device
acknowledged, and a `PushStop`. The engine reads the stop as observed state
(`Delta.push_stop`, as `deliveries.py`'s delivery time) and asks for the push again after
a short delay; the next push of the same package to that endpoint continues from the
transfer instead of block 0 (`push_firmware` starts over when the device answers 4.08).
A push the device refused (an error code) or that was cancelled leaves nothing to resume.

One entry per endpoint that a push went to, dropped when the endpoint de-registers or
expires: bounded by the devices of the desired state, the only ones pushed to.
Subscribers (the controller, which looks at the device) hear of every stop. Fed by
`DeviceClient.push_firmware`; owned by `Lwm2mServer`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from reconciler.errors import DeviceMoved, TemporaryError
from reconciler.lwm2m.push import Transfer
from reconciler.model.observed import PushStop

log = logging.getLogger(__name__)

Subscriber = Callable[[str], None]  # the endpoint whose push stopped
# What cuts a push short without the device refusing it: loss, silence, a new address.
INTERRUPTIONS = (TemporaryError, DeviceMoved)


@dataclass(frozen=True, slots=True)
class _Resumable:
    package: str  # what was pushed (the image id), so a point is never used for another
    transfer: Transfer


class Pushes:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._running: set[str] = set()
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

    def stop(self, endpoint: str) -> PushStop | None:
        """How the endpoint's latest push ended early, or None (none did, or it ended)."""
        return self._stops.get(endpoint)

    @contextlib.contextmanager
    def pushing(self, endpoint: str, package: str, size: int, *, resume: bool
                ) -> Iterator[Transfer]:
        """A push of `package` (`size` bytes) to `endpoint` for the body: the transfer to
        continue (with `resume`, where the last push of the same package stopped; else
        from block 0), recorded as it ends."""
        if endpoint in self._running:
            raise TemporaryError(f"{endpoint}: a push to it is already running")
        kept = self._resumable.pop(endpoint, None)
        same = kept is not None and kept.package == package and kept.transfer.size == size
        transfer = kept.transfer if resume and same and kept is not None else Transfer(size)
        if resume and transfer.offset == 0:
            log.info("%s: no acknowledged block to resume from (%s): pushing from block 0",
                     endpoint, "another package" if kept is not None and not same
                     else "none recorded since this server started")
        self._running.add(endpoint)
        self._stops.pop(endpoint, None)
        try:
            yield transfer
        except INTERRUPTIONS as exc:
            self._stopped(endpoint, _Resumable(package, transfer), str(exc))
            raise
        finally:
            self._running.discard(endpoint)

    def _stopped(self, endpoint: str, kept: _Resumable, reason: str) -> None:
        transfer = kept.transfer
        self._resumable[endpoint] = kept
        self._stops[endpoint] = PushStop(self._clock(), transfer.block, transfer.blocks,
                                         reason)
        for subscriber in list(self._subscribers):
            try:
                subscriber(endpoint)
            except Exception:
                log.exception("push subscriber failed on %s", endpoint)

    def forget(self, endpoint: str) -> None:
        """The endpoint went away: nothing of its pushes is kept."""
        self._resumable.pop(endpoint, None)
        self._stops.pop(endpoint, None)
