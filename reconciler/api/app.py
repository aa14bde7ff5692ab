"""`create_app(reader, tokens=...)`: the read-only HTTP API as one FastAPI application.

Composes the reference routes (`routes.py`), status and probes (`status.py`), the event
feed (`events.py`), the JSON error handlers (`errors.py`), the token check (`access.py`),
HEAD support (`head.py`), the trimmed OpenAPI document (`openapi.py`), offline /docs
(`docs.py`), /metrics (`metrics.py`, over the process's `observe.Metrics` when `fota
serve` passes one) and the /ui dashboard (`ui/`) around one `StoreReader`.
No import-time globals: `fota serve` and the tests each build their own app.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fastapi import Depends, FastAPI

from reconciler.api.access import TokenCheck
from reconciler.api.cache import BodyCache
from reconciler.api.docs import install_docs
from reconciler.api.errors import install_handlers
from reconciler.api.events import StreamLimits, events_router
from reconciler.api.head import HeadAsGet
from reconciler.api.metrics import metrics_router
from reconciler.api.openapi import install_openapi
from reconciler.api.routes import collections_router
from reconciler.api.status import health_router, status_router
from reconciler.api.ui import ui_router
from reconciler.observe.metrics import Metrics
from reconciler.store import EventHub, StoreReader

DESCRIPTION = """Read-only view of fota-gitops, with the GET shapes of the reference FOTA API.
Desired state lives in git: every write method answers 405. Unset ids
(`currentFirmwareId`, `targetFirmwareId`) and values a device never reported are left out
of the JSON rather than sent as empty strings or null. Every GET route also answers HEAD
(the same status and headers, no body)."""


def create_app(reader: StoreReader, *, tokens: Sequence[str] = (),
               events: EventHub | None = None,
               stream_limits: StreamLimits | None = None,
               metrics: Metrics | None = None,
               not_acting: Callable[[], str | None] = lambda: None) -> FastAPI:
    """`events`: the writer's hub, when it runs in this process (/events then wakes on
    commits instead of looking every `stream_limits.poll` seconds). `not_acting`: why
    this node does not act on devices now (its lease on a shared store lost), for
    /readyz."""
    # No slash redirects: "/collections/" is an unknown path, answered with the JSON 404
    # like any other, not a 307 with an empty body.
    app = FastAPI(title="fota-gitops", version="0.1.0", description=DESCRIPTION,
                  docs_url=None, redoc_url=None, redirect_slashes=False)
    install_handlers(app)
    app.add_middleware(HeadAsGet)
    install_openapi(app, guarded=any(tokens))
    install_docs(app)  # /docs with local Swagger UI assets instead of FastAPI's CDN page
    check = TokenCheck(tokens)
    guard = [Depends(check)]
    cache = BodyCache(reader)
    app.include_router(collections_router(reader, cache), dependencies=guard)
    app.include_router(status_router(reader, cache), dependencies=guard)
    app.include_router(events_router(reader, events, stream_limits or StreamLimits()),
                       dependencies=guard)
    app.include_router(health_router(reader, not_acting))
    app.include_router(metrics_router(reader, metrics or Metrics()), dependencies=guard)
    app.include_router(ui_router(reader, check))  # the dashboard checks the token itself
    return app
