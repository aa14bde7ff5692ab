"""LwM2M queue mode: when a sleeping device can be reached, and holding requests until then.

A queue-mode client (binding `UQ` in 1.0, the `Q` parameter in 1.1+) listens only for a
while after it sent something: the awake window (OMA's default is MAX_TRANSMIT_WAIT, 93 s)
after its Register or Update, extended by each answer it gives. Requests made while it
sleeps wait in `QueueMode.wait` and are released by `wake`, which the server calls on the
device's next Register or Update. Owned by `Lwm2mServer`; `DeviceClient` waits on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from reconciler.model.lwm2m import Registration

DEFAULT_AWAKE_SECONDS = 93.0


class QueueMode:
    def __init__(self, clock: Callable[[], float], awake: float = DEFAULT_AWAKE_SECONDS) -> None:
        self._clock = clock
        self._awake = awake
        self._heard: dict[str, float] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    def is_awake(self, registration: Registration) -> bool:
        if not registration.queue_mode:
            return True
        last = max(registration.updated_at, self._heard.get(registration.endpoint, 0.0))
        return self._clock() < last + self._awake

    def heard(self, endpoint: str) -> None:
        """The device answered a request: it is awake for another window."""
        self._heard[endpoint] = self._clock()

    def forget(self, endpoint: str) -> None:
        """The device de-registered or expired: held requests wake up to find it gone."""
        self.wake(endpoint)

    def held(self, endpoint: str) -> int:
        """How many requests wait for this device to wake up."""
        return sum(not f.done() for f in self._waiters.get(endpoint, ()))

    async def wait(self, endpoint: str) -> None:
        """Until the device's next Register or Update (the caller bounds the wait)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(endpoint, []).append(future)
        try:
            await future
        finally:
            waiting = self._waiters.get(endpoint)
            if waiting is not None and future in waiting:
                waiting.remove(future)
                if not waiting:
                    del self._waiters[endpoint]

    def wake(self, endpoint: str) -> None:
        """The device spoke (Register/Update): release its held requests, oldest first."""
        self._heard.pop(endpoint, None)
        for future in self._waiters.pop(endpoint, []):
            if not future.done():
                future.set_result(None)

    def cancel_all(self) -> None:
        for waiting in self._waiters.values():
            for future in waiting:
                future.cancel()
        self._waiters.clear()
