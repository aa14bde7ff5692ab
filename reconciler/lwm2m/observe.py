"""Client-side Observe (RFC 7641) for `DeviceClient.observe`.

`follow` runs as a task per observation: it iterates aiocoap's observation (the supported
way; the callback API is deprecated and warns), decodes each notification and hands the
values to the caller's `on_notify`. `Observation.cancel()` forgets the observation, so
aiocoap answers the device's next notification with a Reset, which ends it on the device
(RFC 7641 §3.6), and stops the task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiocoap import error as coap_error

from reconciler.errors import FotaError
from reconciler.lwm2m.coaperrors import abandon
from reconciler.lwm2m.codecs import Value
from reconciler.lwm2m.formats import decode_response
from reconciler.model.lwm2m import Path

log = logging.getLogger(__name__)

Notify = Callable[[dict[Path, Value]], None]


class Observation:
    """A running observation of one path on one device."""

    def __init__(self, path: Path, request: Any, follower: asyncio.Task[None] | None,
                 initial: dict[Path, Value]) -> None:
        self.path = path
        self.initial = initial  # the values of the answer that started it
        self._request = request
        self._follower = follower

    @property
    def active(self) -> bool:
        return self._follower is not None and not self._follower.done()

    async def cancel(self) -> None:
        abandon(self._request)
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)
            self._follower = None


async def follow(request: Any, path: Path, on_notify: Notify,
                 heard: Callable[[str], None], endpoint: str) -> None:
    """Deliver notifications until the observation ends (cancel, device, or error)."""
    try:
        async for notification in request.observation:
            heard(endpoint)  # a notifying queue-mode device is awake
            if not notification.code.is_successful():
                log.info("observation of %s%s ended with %s", endpoint, path,
                         notification.code.dotted)
                return
            _deliver(notification, path, on_notify, endpoint)
    except (coap_error.ObservationCancelled, coap_error.NotObservable,
            coap_error.LibraryShutdown):
        return
    except coap_error.Error as exc:
        log.info("observation of %s%s ended: %s", endpoint, path, exc)


def _deliver(notification: Any, path: Path, on_notify: Notify, endpoint: str) -> None:
    try:
        values = decode_response(path, notification)
    except FotaError as exc:
        log.warning("dropping a notification of %s%s: %s", endpoint, path, exc)
        return
    try:
        on_notify(values)
    except Exception:
        log.exception("observer of %s%s failed on a notification", endpoint, path)
