"""`watch(record, stop)`: how late the event loop runs a timer, sampled until `stop`.

A timer asked for `interval` seconds from now that fires later says how long something
held the loop (a slow callback, a big render not offloaded). Started by
`serve.service` beside the controller; the samples go to `Metrics.lagged`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

INTERVAL = 0.5  # seconds between samples: cheap, and a stall this short still shows


async def watch(record: Callable[[float], None], stop: asyncio.Event,
                interval: float = INTERVAL) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        asked = loop.time() + interval
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
        if not stop.is_set():
            record(max(0.0, loop.time() - asked))
