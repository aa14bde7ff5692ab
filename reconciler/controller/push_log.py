"""How far each push came, written to the store in batches and read back after a restart.

A push-only device that our restart (kill -9 included) interrupts mid-push is pushed
again at once by the engine; without a record of how far the push had come it started
at block 0 again: up to ~1,000 blocks of a 1 MiB image resent over a link that costs
the device airtime and battery. The LwM2M layer's `Pushes` notes a running push's
position (`PushPosition`: the bytes the device acknowledged, with the image id, digest
and block size) every few dozen blocks or seconds and at every stop, and drops it when
the push delivered, was refused or its update ended; `PushLog` is where those go (it is
`Pushes.log`). Notes and drops wait in memory, at most one per endpoint (the latest),
and `run` writes whatever is waiting in one transaction in a worker thread as soon as
the previous one is done: one write at a time, however many pushes run. The future a
note returns is done once its batch is stored (or failed: a lost position costs a
resend, so a failure is logged, never raised), which is what lets `Pushes` keep a push
from running far ahead of its stored position.

On start (`restore`, before the work queue runs), the positions of pushes still under
way for the same image and digest go back to `Pushes`, so the engine's resumption
continues there; the rest are deleted. Built and run by the controller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.desired import DesiredState
from reconciler.model.lwm2m import PushPosition
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState
from reconciler.store import Store

log = logging.getLogger("reconciler.restore")

# A position is worth resuming from only while the push may still be running.
PUSHING = frozenset({UpdateState.INITIALIZING, UpdateState.DOWNLOADING})


def position_still_wanted(position: PushPosition, desired: DesiredState,
                          progress: DeviceProgress | None) -> bool:
    """Pure: a recorded position is resumed from only for a device still downloading
    that very image (same id, digest and length) as its target."""
    device = desired.device_by_endpoint(position.endpoint)
    image = desired.images.get(position.image_id)
    if device is None or image is None or progress is None:
        return False
    return (image.sha256 == position.digest and image.length == position.size
            and progress.target_image_id == position.image_id
            and desired.effective_target(device) == position.image_id
            and progress.state in PUSHING)


class PushLog:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: dict[str, PushPosition | None] = {}  # None: delete the row
        self._stored: asyncio.Future[None] | None = None  # done when _pending is written
        self._writing: asyncio.Future[None] | None = None  # the batch being written
        self._wake = asyncio.Event()
        self._closed = False  # `run` ended: nothing waits for a write any more

    def note(self, position: PushPosition) -> asyncio.Future[None]:
        """Record `position` with the next batch; done once that batch is stored."""
        self._pending[position.endpoint] = position
        self._wake.set()
        if self._stored is None:
            self._stored = asyncio.get_running_loop().create_future()
            if self._closed:  # stopping: no push may wait for a write that never comes
                self._stored.set_result(None)
        return self._stored

    def drop(self, endpoint: str) -> None:
        """Delete the endpoint's row with the next batch (a note waiting goes with it)."""
        self._pending[endpoint] = None
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Write each batch as soon as the one before it is stored, until `stop`; then
        what is left."""
        while not stop.is_set():
            waiting = asyncio.ensure_future(self._wake.wait())
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait((waiting, stopping), return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiting.cancel()
                stopping.cancel()
            await self.flush()
        self._closed = True
        await self.flush()

    async def written(self) -> None:
        """Until every note and drop made before this call is stored (or failed)."""
        if self._pending and self._stored is None and not self._closed:
            self._stored = asyncio.get_running_loop().create_future()  # drops alone
        for batch in (self._writing, self._stored):
            if batch is not None:
                await asyncio.shield(batch)

    async def flush(self) -> None:
        """Write what waits, in one transaction in a worker thread (`run` calls it one
        batch at a time, so a later batch never lands before an earlier one)."""
        self._wake.clear()
        pending, self._pending = self._pending, {}
        stored, self._stored = self._stored, None
        if stored is None and pending:
            stored = asyncio.get_running_loop().create_future()
        self._writing = stored
        try:
            if pending:
                positions = [p for p in pending.values() if p is not None]
                gone = [endpoint for endpoint, p in pending.items() if p is None]
                await asyncio.to_thread(self._store.put_push_positions, positions, gone)
        except Exception:
            log.exception("could not write %d push positions to the state file; those "
                          "pushes resume from an older one after a restart", len(pending))
        finally:
            self._writing = None
            if stored is not None and not stored.done():
                stored.set_result(None)

    def restore(self, server: Lwm2mServer, desired: DesiredState,
                owned: Callable[[str], bool] = lambda _endpoint: True) -> int:
        """After a restart, before the work queue runs: the positions of pushes still
        under way go back to the server's `Pushes` (only those `owned` by this node),
        the rest are deleted. Returns how many were restored."""
        restored, stale = 0, []
        for position in self._store.push_positions():
            if not owned(position.endpoint):
                continue  # another node's push (several nodes on one store)
            device = desired.device_by_endpoint(position.endpoint)
            progress = self._store.progress(device.device_id) if device else None
            if position_still_wanted(position, desired, progress):
                server.pushes.restore(position)
                restored += 1
            else:
                stale.append(position.endpoint)
        if stale:
            try:
                self._store.put_push_positions([], stale)
            except Exception:  # rows of ended pushes: deleted with a later batch anyway
                log.exception("could not delete %d stale push positions", len(stale))
        if restored:
            log.info("restored the positions of %d pushes from the state file", restored)
        return restored
