"""An app a test built and answered with is freed once the test lets go of it: what keeps
the test processes' heaps small enough that one garbage-collector pass stays short
(builders.heap). Fails if a FastAPI release keeps apps alive some other way."""

from __future__ import annotations

import gc
import weakref

import httpx
from builders.heap import forget_apps

from reconciler.api import create_app
from reconciler.store import SqliteReader

TOKEN = "lifetime-token"


async def answered_once(reader: SqliteReader) -> weakref.ref[object]:
    """Build an app, let it answer (FastAPI classifies its endpoints and the token
    dependency on the way), and hand back only a weak reference to it."""
    app = create_app(reader, tokens=[TOKEN])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test",
                                 headers={"X-API-Token": TOKEN}) as http:
        assert (await http.get("/collections")).status_code == 200
    return weakref.ref(app)


async def test_an_app_that_answered_is_freed_after_the_test(reader: SqliteReader) -> None:
    app = await answered_once(reader)
    forget_apps()  # what tests/conftest.py does after every test
    gc.collect()
    assert app() is None, \
        f"a FastAPI app outlived its test ({len(gc.get_referrers(app()))} referrers)"
