"""The HTTP API `fota serve` runs: uvicorn's programmatic `Server` on the FastAPI app.

Its own module because FastAPI and uvicorn take over a second to import: the service
(`reconciler.serve.service`) imports this module and builds the API in a worker thread
after the CoAP port answers, so a restarted server serves the downloads it persisted
first and the API follows (issue 8, bench/README.md's restart.py section).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import uvicorn

from reconciler.api import create_app
from reconciler.api.events import StreamLimits
from reconciler.observe.metrics import Metrics
from reconciler.serve.settings import ServeSettings
from reconciler.store import SqliteStore, open_reader


class ApiServer(uvicorn.Server):
    """uvicorn's Server without its own signal handling: `fota serve` owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def build(settings: ServeSettings, store: SqliteStore, metrics: Metrics,
          not_acting: Callable[[], str | None]) -> ApiServer:
    """The API over its own reader of the state, its routes and schemas built here (a
    few hundred ms of pure Python: called in a worker thread), ready to serve."""
    reader = open_reader(settings.store_location())
    limits = StreamLimits(max_clients=settings.events_max_streams,
                          keepalive=settings.events_keepalive,
                          send_timeout=settings.events_send_timeout)
    app = create_app(reader, tokens=settings.tokens, events=store.event_hub,
                     stream_limits=limits, metrics=metrics, not_acting=not_acting)
    config = uvicorn.Config(app, host=settings.http_host, port=settings.http_port,
                            log_config=None, log_level="warning", lifespan="off",
                            http="httptools")  # the declared parser, not a silent fallback to h11
    config.load()  # here, not when it starts serving on the loop
    return ApiServer(config)
