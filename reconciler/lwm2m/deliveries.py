"""When the server last finished delivering a firmware package to each device.

A pull download is done when we serve its last block; a push when the device
acknowledges the last Block1 PUT. From then on the device has all it needs to say
Downloaded (or why not), and that word usually comes as a notification of /5/0/3. A
notification can be lost (a NON one is never sent again, a CON one after the device's
own 2-3 s), and with an Observe running the engine would otherwise read only at its
rare observed poll (4 x poll_interval, 120 s by default). With the delivery's time in
its input (`Delta.delivered_at`), the engine asks the device itself on a short backoff
(`phases.delivered_check`).

`Deliveries` holds the latest delivery per registered endpoint (forgotten when the
endpoint registers again or goes away, so it is bounded by the registrations) and tells
its subscribers (the controller, which looks at the device) at most once per
`MIN_GAP` seconds per endpoint: a device, or anyone holding its download URI, that asks
for the last block again and again causes no more work than that. Fed by the firmware
repository's last block (`FirmwareRepository.on_final_block`) and by `DeviceClient`'s
push; read by the controller's decider. Owned by `Lwm2mServer`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

MIN_GAP = 1.0  # seconds: subscribers hear of one endpoint's deliveries at most this often
Subscriber = Callable[[str], None]  # the endpoint a package was delivered to


class Deliveries:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._at: dict[str, float] = {}
        self._told: dict[str, float] = {}  # when subscribers last heard of the endpoint
        self._subscribers: list[Subscriber] = []

    def __len__(self) -> int:
        return len(self._at)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def delivered(self, endpoint: str) -> None:
        """The last block of `endpoint`'s package went out (pull) or was taken (push)."""
        now = self._clock()
        self._at[endpoint] = now
        if now - self._told.get(endpoint, float("-inf")) < MIN_GAP:
            return
        self._told[endpoint] = now
        for subscriber in list(self._subscribers):
            try:
                subscriber(endpoint)
            except Exception:
                log.exception("delivery subscriber failed on %s", endpoint)

    def at(self, endpoint: str) -> float | None:
        """When `endpoint`'s package was last delivered in its current registration."""
        return self._at.get(endpoint)

    def forget(self, endpoint: str) -> None:
        self._at.pop(endpoint, None)
        self._told.pop(endpoint, None)
