"""`run_service`: GitSource, Lwm2mServer, Controller, Notifier and the HTTP API in one loop.

The composition `fota serve` runs (tests and the demo call it too): it opens the store,
loads the first good revision, starts the CoAP server with the controller subscribed,
serves the read-only API with uvicorn's programmatic `Server`, and on `stop` (SIGINT or
SIGTERM from `serve.cmd`) shuts everything down in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import shutil
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler import allocator
from reconciler.controller.core import Controller
from reconciler.errors import FotaError
from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.desired import DesiredState
from reconciler.observe import looplag
from reconciler.observe.metrics import Metrics
from reconciler.security.credentials import CredentialsError
from reconciler.serve import transport
from reconciler.serve.admission import Admission
from reconciler.serve.instrument import counting_refusals, instrument
from reconciler.serve.nodes import node_parts
from reconciler.serve.security import start_security
from reconciler.serve.settings import ServeSettings
from reconciler.sources import GitSource, SourceStatus
from reconciler.sources.gitrepo import is_url
from reconciler.store import EventRetention, SqliteStore, StoreReader, open_reader, open_store
from reconciler.store.retention import keep_bounded
from reconciler.store.schema import SchemaError

if TYPE_CHECKING:  # imported at run time by `_api`, off the CoAP port's start
    from reconciler.serve.httpapi import ApiServer

log = logging.getLogger("reconciler.serve")
SHUTDOWN_GRACE = 10.0  # seconds each part gets to stop cleanly


class StartupError(FotaError):
    """The configuration cannot work (state file, repository, branch): `fota serve`
    prints this one line and exits 2 instead of a traceback."""


@dataclass(frozen=True, slots=True)
class Running:
    """What a started service listens on (ports resolved when 0 was asked for)."""

    coap_port: int | None  # None with `--coap off`
    http_port: int
    controller: Controller
    coaps_port: int | None = None  # with `--coaps`


async def run_service(settings: ServeSettings, stop: asyncio.Event,
                      on_ready: Callable[[Running], None] | None = None, *,
                      clock: Callable[[], float] = time.time) -> None:
    """Refusals that need no state come first (a missing repository, the HTTP port in
    use), so they cost nothing; a start that fails after the state file was created for
    it removes what it created. `clock` is the wall clock of the LwM2M server and the
    controller (tests move it to a maintenance window's opening)."""
    _check_repo(settings.repo)
    http = _bind_http(settings.http_host, settings.http_port)
    created = _absent(settings.state) if isinstance(settings.state, Path) else []
    store: SqliteStore | None = None
    try:
        store = _open_store(settings.store_location(), settings.node_id)
        source = GitSource(settings.repo, settings.branch,
                           cache_dir=_cache_dir(settings),
                           interval=settings.poll_source, on_status=_status_writer(store))
        await _run(settings, store, source, http, stop, on_ready, clock)
    except StartupError:
        if store is not None:
            store.close()
            store = None
        _remove(created)
        raise
    finally:
        http.close()
        if store is not None:
            store.close()


def _check_repo(repo: str) -> None:
    if not is_url(repo) and not Path(repo).is_dir():
        raise StartupError(f"no repository at {repo}: the path does not exist or is not "
                           "a directory (--repo or FOTA_REPO)")


def _bind_http(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound before anything else starts, so a port in use
    is one line and exit 2 instead of uvicorn's words after CoAP and the controller
    started. uvicorn serves on it."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        # IPPROTO_TCP, not 0: asyncio turns Nagle off only on connections whose socket
        # says TCP, and with Nagle on every keep-alive response's body waited for the
        # client's delayed ACK of its headers (40 ms per API request, measured).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except OSError as exc:
        raise StartupError(f"cannot serve HTTP on {host}:{port}: {exc.strerror or exc}") \
            from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot serve HTTP on {host}:{port}: {exc.strerror or exc}") \
            from exc
    return sock


def _absent(state: Path) -> list[Path]:
    """What a start on `state` would create that is not there yet (deepest last)."""
    missing = [d for d in reversed(state.parent.resolve().parents) if not d.exists()]
    missing += [p for p in (state.parent, state.parent / "cache") if not p.exists()]
    if not state.exists():
        missing += [state, Path(f"{state}-wal"), Path(f"{state}-shm")]
    return missing


def _cache_dir(settings: ServeSettings) -> Path:
    if settings.cache_dir is not None:
        return settings.cache_dir
    if isinstance(settings.state, Path):
        return settings.state.parent / "cache"
    return Path(".fota/cache")  # a database has no directory to put it beside


def _remove(created: list[Path]) -> None:
    """Undo a failed start: the state file and the directories it created."""
    for path in reversed(created):
        with contextlib.suppress(FileNotFoundError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def _open_store(state: Path | str, node: str | None) -> SqliteStore:
    """The store of a state file, or of a PostgreSQL database (`PgStore`, which is a
    `SqliteStore` on PostgreSQL's sessions); its errors name the database, never the
    password its URL may hold."""
    try:
        # on a database with --node-id, this node's own writer lock: several share it
        return open_store(state) if isinstance(state, Path) else open_store(state, node)
    except (OSError, sqlite3.Error, SchemaError, FotaError) as exc:
        where = f"state file {state}" if isinstance(state, Path) else "the database"
        raise StartupError(f"cannot use {where}: {exc}") from exc


async def _run(settings: ServeSettings, store: SqliteStore, source: GitSource,
               http: socket.socket, stop: asyncio.Event,
               on_ready: Callable[[Running], None] | None,
               clock: Callable[[], float]) -> None:
    try:  # before waiting for a revision: a bad file is a refusal to start
        security = start_security(settings, source, store.set_credentials_status)
    except CredentialsError as exc:
        raise StartupError(f"credentials not usable (--credentials or FOTA_CREDENTIALS): "
                           f"{exc}") from exc
    desired = await _first_revision(source, store, stop, settings)
    if desired is None:
        return
    await security.warn_unreachable(desired)  # a fleet's lookups, in a worker thread
    admission = Admission(source, store.set_admission_status)
    store.set_admission_status({})  # counted per run: forget the last run's
    metrics = Metrics()
    server = Lwm2mServer(settings.coap_host, settings.plain_port,
                         admit=counting_refusals(admission, metrics.refused),
                         public_uri=settings.public_uri, awake_seconds=settings.awake_window,
                         clock=clock, coap_rto=settings.coap_rto, **transport.server_options(
                             settings, psk=security.view.psk,
                             register_check=security.view.check_register))
    unrevoke = security.revoke_on_reload(server.revoke_identities)
    node = node_parts(settings, store, clock, server, source.image)
    controller = Controller(store, server, source.image, settings.controller, clock,
                            ownership=node.ownership, lease=node.lease)
    controller.decider.apply_desired = node.apply_desired
    controller.decider.feed = node.feed
    await node.settle()  # the leader applies the first revision, the others wait for it
    uninstrument = instrument(metrics, store, server, controller)
    await controller.set_desired(desired)
    await controller.restore_offers()  # before the socket: a resumed download never sees 4.04
    # The start-up order after a restart (kill -9): devices that were downloading send
    # their next Block2 GET at their RFC 7252 retransmission (2-3 s after the kill, then
    # doubling), so the CoAP port opens as soon as the persisted offers are served again,
    # before the API and the notifier, whose imports (FastAPI, uvicorn, httpx) and routes
    # take over a second: those follow in a worker thread while the port answers (the
    # loop keeps its turns: the GIL switches every 5 ms). Everything the port needs is
    # imported by now, so it is never silent once it answers (bench/startup.py).
    try:
        await server.start(restoring=True)  # registration requests wait for restore()
    except OSError as exc:
        raise StartupError(f"cannot serve LwM2M on {transport.addresses(settings)}: "
                           f"{exc.strerror or exc}") from exc
    unsubscribe = server.subscribe(controller.on_registration)
    notify_reader: StoreReader | None = None
    api: ApiServer | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        store.set_listeners(transport.listeners(settings, server.port, server.coaps_port))
        controller.restore()
        api = await asyncio.to_thread(_api, settings, store, metrics, node.lease.reason)
        from reconciler.notify import Notifier  # imported by `_api`'s thread: no wait

        # its own reader: never waits behind the API's
        notify_reader = open_reader(settings.store_location())
        notifier = Notifier(notify_reader, store.set_notify_state, hub=store.event_hub)
        await notifier.set_desired(desired)

        async def on_desired(new: DesiredState) -> None:
            await security.warn_unreachable(new)  # a fleet's lookups, in a worker thread
            await controller.set_desired(new)
            await notifier.set_desired(new)  # the controller first: it never waits on us

        # The work queue starts with the notifier, as before: a first start's notifier
        # begins at the event log's end, so no device event may come before it.
        tasks += [asyncio.create_task(controller.run(stop), name="controller"),
                  asyncio.create_task(looplag.watch(metrics.lagged, stop), name="loop-lag"),
                  asyncio.create_task(api.serve(sockets=[http]), name="http-api"),
                  asyncio.create_task(source.run(on_desired, stop), name="source"),
                  asyncio.create_task(notifier.run(stop), name="notifier"),
                  asyncio.create_task(_event_retention(settings, store, stop, clock),
                                      name="event-retention"),
                  asyncio.create_task(transport.publish_dtls(server.dtls_status,
                                                             store.set_dtls_status, stop),
                                      name="dtls-status"),
                  asyncio.create_task(security.run(stop), name="credentials"),
                  *node.tasks(stop)]
        await _announce(settings, server, api, controller, on_ready)
        await stop.wait()
    finally:
        log.info("shutting down")
        if api is not None:
            api.should_exit = True
        store.event_hub.close()  # ends the /events streams uvicorn would wait for
        stop.set()
        await _stop_all(tasks)
        unsubscribe()
        unrevoke()
        uninstrument()
        await _bounded(server.stop(), "the CoAP server")
        admission.close()
        if notify_reader is not None:
            notify_reader.close()
        log.info("stopped")


async def _stop_all(tasks: list[asyncio.Task[None]]) -> None:
    """Let each part finish on its own, then cancel whichever did not in time, saying so:
    a shutdown never hangs on one part."""
    _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)
    for task in pending:
        log.warning("%s did not stop within %gs; cancelling it", task.get_name(),
                    SHUTDOWN_GRACE)
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _bounded(work: Awaitable[None], what: str) -> None:
    try:
        await asyncio.wait_for(work, SHUTDOWN_GRACE)
    except TimeoutError:
        log.warning("%s did not stop within %gs", what, SHUTDOWN_GRACE)


async def _first_revision(source: GitSource, store: SqliteStore, stop: asyncio.Event,
                          settings: ServeSettings) -> DesiredState | None:
    """Block until the repository yields a good revision (or stop). A local repository
    or branch that cannot be read at all is a configuration error: raise StartupError
    (a remote one may be unreachable for a while, so that is waited out)."""
    while not stop.is_set():
        desired = await source.poll() or source.current
        if desired is None and source.status.errors and source.git_error is None:
            desired = await _last_good(source, store)
        if desired is not None:
            return desired
        problem = source.git_error
        if problem is not None and not is_url(settings.repo):
            followed = source.branch or settings.branch
            branch = f"branch {followed!r} of " if followed else ""
            raise StartupError(f"cannot read {branch}{settings.repo}: {problem}")
        log.error("no valid revision yet: %s", "; ".join(source.status.errors) or "empty")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.poll_source)
    return None


async def _last_good(source: GitSource, store: SqliteStore) -> DesiredState | None:
    """The head is invalid on start: serve the last good revision the state file
    recorded (read from git's object database) rather than nothing; /status and /readyz
    say the service is degraded until a good commit follows."""
    revision = store.applied_revision()
    if revision is None:
        return None
    desired = await source.start_from(revision)
    if desired is not None:
        log.warning("head %s is invalid: running the last good revision %s",
                    str(source.status.head_revision)[:12], revision[:12])
    return desired


def _status_writer(store: SqliteStore) -> Callable[[SourceStatus], None]:
    """The source's status callback: store every change for /status, and log the errors
    of a head commit that is not applied once, when they change."""
    logged: tuple[str, ...] = ()

    def write(status: SourceStatus) -> None:
        nonlocal logged
        record = asdict(status)
        record["errors"] = list(status.errors)
        store.set_source_status(record)
        if status.errors and status.errors != logged:
            log.error("revision %s not applied: %s", str(status.head_revision)[:12],
                      "; ".join(status.errors))
        logged = status.errors

    return write


async def _event_retention(settings: ServeSettings, store: SqliteStore,
                           stop: asyncio.Event, clock: Callable[[], float]) -> None:
    retention = EventRetention(max_age=settings.events_max_age,
                               max_count=settings.events_max_count)
    await keep_bounded(store, retention, settings.events_prune_interval, stop, clock)


def _api(settings: ServeSettings, store: SqliteStore, metrics: Metrics,
         not_acting: Callable[[], str | None]) -> ApiServer:
    """The HTTP API, imported and built in a worker thread (see `_run`), and the
    notifier's module with it (httpx): nothing the CoAP port needs."""
    # No full collection while this thread holds the GIL: one scans every object the
    # imports made (~110 ms at load 3, the port silent meanwhile). Frozen afterwards,
    # those objects (modules, classes: they live as long as the process) are never
    # scanned again by the collections the server's own garbage triggers.
    gc.disable()
    try:
        from reconciler.serve import httpapi

        importlib.import_module("reconciler.notify")
        return httpapi.build(settings, store, metrics, not_acting)
    finally:
        gc.freeze()
        gc.enable()


async def _announce(settings: ServeSettings, server: Lwm2mServer, api: ApiServer,
                    controller: Controller, on_ready: Callable[[Running], None] | None) -> None:
    while not api.started:
        await asyncio.sleep(0.01)  # uvicorn offers no event for "listening"
    http_port = int(api.servers[0].sockets[0].getsockname()[1])
    running = Running(server.port, http_port, controller, server.coaps_port)
    bound = transport.listeners(settings, server.port, server.coaps_port)
    lwm2m = ", ".join(f"{name} {where}" for name, where in bound.items() if where)
    # the allocator: `fota` executes itself again for glibc's malloc unless PYTHONMALLOC
    # was set (reconciler/allocator.py); an operator sees here which one runs
    log.info("fota serve ready: %s, http %s:%d, revision %s, allocator %s", lwm2m,
             settings.http_host, http_port, controller.desired.revision[:12],
             allocator.describe())
    if on_ready is not None:
        on_ready(running)
