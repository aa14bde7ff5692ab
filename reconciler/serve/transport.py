"""`fota serve`'s CoAPs wiring: the LwM2M server's DTLS-PSK options from the settings,
the key lookup and the registration check, and the listener's counters in the store.

`run_service` passes `server_options(...)` to `Lwm2mServer` and runs `publish_dtls` beside
the controller; the counters reach `/status` as `dtls` (the API reads only the store).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.serve.settings import ServeSettings

PUBLISH_INTERVAL = 2.0  # seconds between writes of changed counters

KeyLookup = Callable[[bytes], "tuple[bytes, str] | None"]
RegisterCheck = Callable[[str, "bytes | None"], "str | None"]


def server_options(settings: ServeSettings, psk: KeyLookup | None = None,
                   register_check: RegisterCheck | None = None) -> dict[str, Any]:
    """Keyword arguments for `Lwm2mServer`: none without `--coaps`."""
    address = settings.coaps_address()
    options: dict[str, Any] = {"register_check": register_check}
    if address is None:
        return options
    return options | {"coaps": address, "psk": psk,
                      "coaps_public_uri": settings.coaps_public_uri,
                      "dtls_idle_timeout": settings.dtls_idle_timeout}


async def publish_dtls(status: Callable[[], Mapping[str, int] | None],
                       write: Callable[[Mapping[str, object]], None],
                       stop: asyncio.Event, interval: float = PUBLISH_INTERVAL) -> None:
    """Write the counters whenever they changed, every `interval` seconds, until `stop`."""
    last: dict[str, int] | None = None
    write({})  # counted per run: forget the last run's
    while not stop.is_set():
        now = status()
        if now is not None and now != last:
            write(now)
            last = dict(now)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
