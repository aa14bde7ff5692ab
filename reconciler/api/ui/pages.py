"""The dashboard's routes: /ui (collections, halted rollouts, source errors), /ui/devices
(the filtered, keyset-paged device table), /ui/devices/{id} (conditions and timeline),
the login form that sets the session cookie, and the two static files.

Built by `ui_router(reader, check)`, called by `app.create_app`. Read-only like the API:
every page is a GET rendered from the store; the only POSTs are login and logout. A page
asked with `X-Fragment: live` answers only its live part, which ui.js swaps in when
/events says something changed (or, without /events, on a slow poll).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from reconciler.api import session
from reconciler.api.access import TokenCheck
from reconciler.api.cache import BodyCache
from reconciler.api.ui import shapes
from reconciler.model.status import UpdateState
from reconciler.store import DeviceQuery, StoreReader
from reconciler.store.pages import SCAN_WINDOW

PAGE_SIZE = 50
EVENT_LIMIT = 100
LOGIN_BODY_MAX = 4096  # a form with one token field: anything longer is not ours
LOGIN_FAILURES = (10, 60.0)  # at most 10 refused logins a minute, then 429 for everyone
STATIC_TYPES = {"ui.js": "text/javascript", "ui.css": "text/css",
                "favicon.svg": "image/svg+xml"}
# No inline script or style anywhere, nothing from another origin, never in a frame.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def environment() -> Environment:
    env = Environment(loader=PackageLoader("reconciler.api.ui"),
                      autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=shapes.when, short=shapes.short)
    env.globals.update(states=[s.value for s in UpdateState])
    return env


def ui_router(reader: StoreReader, check: TokenCheck) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    env = environment()
    cache = BodyCache(reader)
    failures: deque[float] = deque(maxlen=LOGIN_FAILURES[0])
    static = {name: resources.files(__package__).joinpath("static", name).read_bytes()
              for name in STATIC_TYPES}

    def render(request: Request, name: str, context: dict[str, Any]) -> str:
        """The whole page, or with `X-Fragment: live` only its live part
        (`<name>_live.html`, which the page includes)."""
        live = request.headers.get("x-fragment") == "live" and name != "login"
        template = env.get_template(f"{name}_live.html" if live else f"{name}.html")
        return template.render(context, guarded=not check.open)

    def page(request: Request, name: str, context: dict[str, Any]) -> Response:
        return HTMLResponse(render(request, name, context), headers=HEADERS)

    async def cached(request: Request, key: tuple[str, ...], name: str,
                     build: Callable[[], dict[str, Any]]) -> Response:
        """Big pages (every collection's counts, a filtered scan) render in a worker
        thread once per store change, like the API's big lists."""
        live = request.headers.get("x-fragment") == "live"
        body = await cache.get_offloaded(
            (*key, str(live)), lambda: render(request, name, build()).encode())
        return HTMLResponse(body, headers=HEADERS)

    def signed_in(request: Request) -> Response | None:
        """None when the request may see the dashboard; else where it goes instead."""
        if check.has_session(request):
            return None
        if request.headers.get("x-fragment"):
            return Response(status_code=401, headers=HEADERS)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/ui/login?{urlencode({'next': target})}", status_code=303)

    @router.get("/ui")
    async def overview(request: Request) -> Response:
        if (away := signed_in(request)) is not None:
            return away
        return await cached(request, ("overview",), "overview", lambda: overview_context(reader))

    @router.get("/ui/devices")
    async def devices(request: Request, collection: str = "", state: str = "", tag: str = "",
                      after: str = "") -> Response:
        if (away := signed_in(request)) is not None:
            return away
        filters = {"collection": collection, "state": state, "tag": tag}
        return await cached(request, ("devices", collection, state, tag, after), "devices",
                            lambda: devices_context(reader, filters, after))

    @router.get("/ui/devices/{deviceId}")
    async def device(request: Request, deviceId: str) -> Response:
        if (away := signed_in(request)) is not None:
            return away
        context = device_context(reader, deviceId)
        response = page(request, "device", context)
        if not context["found"]:
            response.status_code = 404
        return response

    @router.get("/ui/login")
    async def login_form(request: Request, next: str = "/ui") -> Response:
        return page(request, "login", {"next": safe_next(next), "error": None})

    @router.post("/ui/login")
    async def login(request: Request) -> Response:
        body = await read_capped(request)
        form = parse_qs(body.decode(errors="replace")) if body is not None else {}
        token, target = form.get("token", [""])[0], safe_next(form.get("next", ["/ui"])[0])
        now = time.monotonic()
        if len(failures) == failures.maxlen and now - failures[0] < LOGIN_FAILURES[1]:
            return refused(request, target, "too many refused logins: wait a minute", 429)
        if check.open or check.matches(token):
            response = RedirectResponse(target, status_code=303, headers=HEADERS)
            if not check.open:
                response.set_cookie(session.COOKIE, session.issue(token, time.time()),
                                    max_age=session.LIFETIME, path="/", httponly=True,
                                    samesite="strict", secure=request.url.scheme == "https")
            return response
        failures.append(now)
        return refused(request, target, "that token is not one this server accepts", 401)

    def refused(request: Request, target: str, error: str, status: int) -> Response:
        response = page(request, "login", {"next": target, "error": error})
        response.status_code = status
        return response

    @router.post("/ui/logout")
    async def logout() -> Response:
        response = RedirectResponse("/ui/login", status_code=303, headers=HEADERS)
        response.delete_cookie(session.COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @router.get("/ui/static/{name}")
    async def asset(name: str) -> Response:
        if name not in static:
            return Response(status_code=404)
        return Response(static[name], media_type=STATIC_TYPES[name],
                        headers={"Cache-Control": "max-age=300",
                                 "X-Content-Type-Options": "nosniff"})

    return router


async def read_capped(request: Request) -> bytes | None:
    """The request body, or None once it passes LOGIN_BODY_MAX (never read further)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > LOGIN_BODY_MAX:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def safe_next(target: str) -> str:
    """Only a path of this dashboard: never an open redirect to another site."""
    if target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui"


def overview_context(reader: StoreReader) -> dict[str, Any]:
    source = reader.source_status()
    errors = source.get("errors")
    applied = reader.applied_revision()
    names = {c.collection_id: c.name for c in reader.collections()}
    collections = []
    for status in reader.collection_statuses():
        target = (reader.image(status.collection_id, status.target_image_id)
                  if status.target_image_id else None)
        rollout = status.rollout
        collections.append({
            "id": status.collection_id, "name": names.get(status.collection_id, ""),
            "management": status.management.value, "devices": status.devices,
            "target": target.version if target else None,
            "revision": applied,  # one desired state drives every collection
            "progress": shapes.progress(status.counts),
            "waves": shapes.wave_progress(rollout),
            "wave": shapes.wave_summary(rollout),
            "halted": bool(rollout.get("halted")),
            "reason": rollout.get("halt_reason") or rollout.get("reason"),
            "hint": shapes.resume_hint(rollout),
        })
    return {"title": "Fleet", "applied": applied, "source": source,
            "problems": shapes.problems([str(e) for e in errors]
                                        if isinstance(errors, list) else []),
            "collections": collections,
            "halted": [c for c in collections if c["halted"]]}


def devices_context(reader: StoreReader, filters: dict[str, str], after: str
                    ) -> dict[str, Any]:
    error, query = parse_filters(filters, after)
    page = reader.device_page(query) if query else None
    rows = page.devices if page else []
    resume = page.resume_after if page else None
    kept = {k: v for k, v in filters.items() if v}
    return {"title": "Devices", "filters": filters, "error": error, "rows": rows,
            "collections": reader.collections(), "after": after,
            # A short page that still has a cursor: the scan window ended, not the list.
            "window_ended": resume is not None and len(rows) < PAGE_SIZE,
            "window": SCAN_WINDOW, "resume": resume,
            "next": f"/ui/devices?{urlencode({**kept, 'after': resume})}" if resume else None,
            "first": f"/ui/devices?{urlencode(kept)}" if after else None}


def parse_filters(filters: dict[str, str], after: str) -> tuple[str | None, DeviceQuery | None]:
    state = filters["state"] or None
    if state is not None and state not in {s.value for s in UpdateState}:
        return f"unknown state {state!r}", None
    tag = None
    if filters["tag"]:
        key, sep, value = filters["tag"].partition("=")
        if not sep or not key:
            return "filter tags as key=value, for example site=oslo", None
        tag = (key.strip(), value.strip())
    try:
        return None, DeviceQuery(collection_id=filters["collection"] or None, state=state,
                                 tag=tag, after=after or None, limit=PAGE_SIZE)
    except ValueError as exc:
        return str(exc), None


def device_context(reader: StoreReader, device_id: str) -> dict[str, Any]:
    cid = reader.device_collection(device_id)
    view = reader.device(cid, device_id) if cid else None
    if view is None:
        return {"title": "Unknown device", "found": False, "device_id": device_id}
    target = (reader.image(view.collection_id, view.target_image_id)
              if view.target_image_id else None)
    events = reader.events(device_id, EVENT_LIMIT)
    return {"title": f"Device {device_id}", "found": True, "device_id": device_id,
            "device": view, "target": target.version if target else None,
            "conditions": reader.conditions(device_id), "events": list(reversed(events))}
