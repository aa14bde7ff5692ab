"""`fota serve`'s CoAPs wiring: the LwM2M server's DTLS-PSK options from the settings,
the key lookup and the registration check, the listener's counters in the store, and
which LwM2M listeners run (plain CoAP, CoAPs or both: `--coap off`).

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


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def addresses(settings: ServeSettings) -> str:
    """The LwM2M listeners the settings ask for, for a start-up error."""
    wanted = [] if settings.plain_port is None else [
        _hostport(settings.coap_host, settings.coap_port)]
    if settings.coaps is not None:
        wanted.append(f"coaps://{settings.coaps}")
    return " and ".join(wanted)


def listeners(settings: ServeSettings, coap_port: int | None,
              coaps_port: int | None) -> dict[str, str | None]:
    """The LwM2M listeners that run, HOST:PORT as bound (None: not running), for
    /status `listeners` and the ready line."""
    coaps = settings.coaps_address()
    return {"coap": None if coap_port is None else _hostport(settings.coap_host, coap_port),
            "coaps": None if coaps is None or coaps_port is None
            else _hostport(coaps[0], coaps_port)}


async def publish_dtls(status: Callable[[], Mapping[str, int] | None],
                       write: Callable[[Mapping[str, object]], None],
                       stop: asyncio.Event, interval: float = PUBLISH_INTERVAL) -> None:
    """Write the counters whenever they changed, every `interval` seconds, until `stop`,
    and once more then: the state file keeps the run's final counts."""
    last: dict[str, int] | None = None
    write({})  # counted per run: forget the last run's
    while True:
        now = status()
        if now is not None and now != last:
            write(now)
            last = dict(now)
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
