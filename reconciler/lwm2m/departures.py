"""Requests to a device's old address, ended when the device registers from a new one.

A device that reboots (after an Execute, say) comes back from a new socket and
registers again. A request we sent before to its old address can never be answered
from there: the old socket is gone, and aiocoap would not match an answer from the new
address to it anyway. Left alone it waits out its retransmissions (up to a minute and
more) while it holds the reconcile that sent it, so the Register that says where the
device now is waits with it: in the loss benchmark a probe sent to the old address
before the device's re-Register got through held the device for 18 s after that
Register had arrived.

`Departures` keeps, per endpoint, the waits of the requests in flight with the remote
each one went to; `moved(endpoint, remote)` (the registration table says the endpoint now
speaks from `remote`) ends every wait whose remote differs. `DeviceClient` races each
answer against its wait and raises `DeviceMoved` when the wait ends first; the next
decision reads the device at its new address. Made and told by `Lwm2mServer`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


def same_remote(a: object, b: object) -> bool:
    """Whether two aiocoap remotes are one address (remotes of different transports, a
    UDP address and a DTLS session, never are; aiocoap's own equality would raise)."""
    return a is b or (type(a) is type(b) and a == b)


class Departures:
    def __init__(self) -> None:
        self._waits: dict[str, list[tuple[object, asyncio.Future[None]]]] = {}

    def __len__(self) -> int:
        """Requests in flight being watched (over all endpoints)."""
        return sum(len(waits) for waits in self._waits.values())

    @contextlib.contextmanager
    def watch(self, endpoint: str, remote: object) -> Iterator[asyncio.Future[None]]:
        """A future that is done once `endpoint` registers from elsewhere than `remote`,
        for as long as the block runs (a request's wait for its answer)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        item = (remote, future)
        self._waits.setdefault(endpoint, []).append(item)
        try:
            yield future
        finally:
            waits = self._waits.get(endpoint)
            if waits is not None:
                with contextlib.suppress(ValueError):
                    waits.remove(item)
                if not waits:
                    del self._waits[endpoint]
            future.cancel()  # nothing waits on it any more (a no-op when done)

    def moved(self, endpoint: str, remote: object) -> int:
        """`endpoint` now speaks from `remote`: end the waits of requests sent elsewhere;
        returns how many."""
        ended = 0
        for sent_to, future in self._waits.get(endpoint, ()):
            if not future.done() and not same_remote(sent_to, remote):
                future.set_result(None)
                ended += 1
        return ended
