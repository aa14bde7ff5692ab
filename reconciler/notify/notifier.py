"""`Notifier`: routes the store's device events to providers and posts commit statuses.

It runs as its own task beside the controller and shares nothing with it but the state
file: it reads the events table and the per-collection status through its own read-only
`SqliteReader` (in a worker thread) and hands each request to the provider's `Sender`
without waiting, so a slow or dead receiver never slows a rollout. The controller never
calls it; `set_desired` (from the git source, after the controller) tells it the
providers, alerts and which collections the new revision changed.

Delivery is at least once with dedupe: the persisted cursor is the last event every
sender finished (delivered, or dropped and counted), so a restart re-sends at most what
was in flight, under the same event id (`X-Fota-Event-Id`, the CloudEvent `id`). Commit
statuses are recorded as posted only once the git host accepted them and never posted
twice with the same state and description. Wired by `reconciler.serve.service`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from reconciler.model.desired import DesiredState
from reconciler.model.notify import NO_NOTIFICATIONS, Notifications, Provider, ProviderKind
from reconciler.model.observed import DeviceEvent
from reconciler.notify.commit_status import (
    CommitStatus,
    State,
    fingerprints,
    rollout_status,
    status_request,
    superseded,
)
from reconciler.notify.delivery import DeliveryConfig, Sender
from reconciler.notify.messages import NotifyEvent, routed, slack_request, webhook_request
from reconciler.store.event_log import EventHub
from reconciler.store.reader import SqliteReader
from reconciler.store.views import CollectionStatus

log = logging.getLogger("reconciler.notify")
Persist = Callable[[Mapping[str, object]], None]
STATS_EVERY = 10.0  # seconds between two writes of changed counters alone


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    interval: float = 1.0  # seconds between two looks at the store without a wake()
    batch: int = 500  # events read per query; a look reads at most 10 batches
    status_interval: float = 10.0  # least seconds between two `pending` updates of one status


@dataclass(slots=True)
class _Live:
    """A provider whose secrets were found: its settings and its sender."""

    provider: Provider
    url: str
    secret: str | None
    sender: Sender


@dataclass(frozen=True, slots=True)
class _Rollout:
    sha: str
    fingerprint: str


class Notifier:
    def __init__(self, reader: SqliteReader, persist: Persist,
                 config: NotifyConfig | None = None,
                 env: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 hub: EventHub | None = None) -> None:
        self.reader = reader
        self.hub = hub  # the writer's: wakes us after each commit that appended events
        self.persist = persist
        self.config = config or NotifyConfig()
        self.env = os.environ if env is None else env
        self.clock = clock
        self.notifications: Notifications = NO_NOTIFICATIONS
        self.revision = ""
        self.errors: dict[str, str] = {}  # provider -> why it cannot run (missing variable)
        self._live: dict[str, _Live] = {}
        self._names: dict[str, str] = {}  # collection id -> name, for chat messages
        self._wake = asyncio.Event()
        state = reader.notify_state()
        cursor = state.get("cursor")
        self.cursor = cursor if isinstance(cursor, int) else reader.last_event_seq()
        self._rollouts = {cid: _Rollout(*v) for cid, v in _mapping(state, "rollouts").items()}
        self._posted = {k: _status(v) for k, v in _mapping(state, "posted").items()}
        self._queued: dict[str, CommitStatus] = {}
        self._last_pending: dict[str, float] = {}
        self._saved: object = None
        self._saved_stats: object = None
        self._saved_at = -STATS_EVERY

    # --- what the git source tells it ------------------------------------------------
    async def set_desired(self, desired: DesiredState) -> None:
        """Providers and alerts of the revision, and which rollouts it starts. The revision
        and its rollouts change together after the last await: a look at the store in
        between still matches the old revision's rollouts with the old revision."""
        # Without a git host to post to, no rollout is tracked: a fleet without
        # notifications costs nothing (a host added later starts at its revision).
        hosts = any(p.kind.commit_status for p in desired.notifications.providers)
        found = await asyncio.to_thread(fingerprints, desired) if hosts else {}
        await self._configure(desired.notifications)
        self.revision = desired.revision
        self._names = {cid: c.name for cid, c in desired.collections.items()}
        for cid, print_ in found.items():
            known = self._rollouts.get(cid)
            if known is None or known.fingerprint != print_:
                if known is not None:
                    self._supersede(cid, known.sha, desired.revision)
                self._rollouts[cid] = _Rollout(desired.revision, print_)
        for cid in [c for c in self._rollouts if c not in found]:
            self._supersede(cid, self._rollouts.pop(cid).sha, desired.revision)
        self.wake()

    def wake(self) -> None:
        """New events or statuses may be there: look now rather than at the interval."""
        self._wake.set()

    def stats(self) -> dict[str, dict[str, object]]:
        found: dict[str, dict[str, object]] = {n: {"error": e} for n, e in self.errors.items()}
        found.update({n: live.sender.stats() for n, live in self._live.items()})
        return found

    # --- the task ----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Look at the store on every wake() (and after every commit that appended events,
        given the hub) and at least every `interval`, until `stop`."""
        follower = asyncio.create_task(self._follow(self.hub, stop)) if self.hub else None
        try:
            while not stop.is_set():
                self._wake.clear()
                await self.tick()
                waker = asyncio.create_task(self._wake.wait())
                stopper = asyncio.create_task(stop.wait())
                await asyncio.wait((waker, stopper), timeout=self.config.interval,
                                   return_when=asyncio.FIRST_COMPLETED)
                for task in (waker, stopper):
                    task.cancel()
        finally:
            if follower is not None:
                follower.cancel()
                await asyncio.gather(follower, return_exceptions=True)
            with contextlib.suppress(Exception):  # the store may be closing under us
                await self._save(force=True)
            await self.close()

    async def _follow(self, hub: EventHub, stop: asyncio.Event) -> None:
        with hub.subscribe() as sub:
            while not stop.is_set():
                if await sub.wait(self.config.interval):
                    self.wake()

    async def close(self) -> None:
        """Stop every sender (what is still queued is sent again after a restart)."""
        await asyncio.gather(*(live.sender.close() for live in self._live.values()))
        self._live.clear()

    async def tick(self) -> None:
        """One look: forward new events, update commit statuses, persist the cursor."""
        await self._forward_events()
        await self._update_statuses()
        await self._save()

    async def _forward_events(self) -> None:
        if not any(not live.provider.kind.commit_status for live in self._live.values()):
            # Nobody to send events to: skip them unread (one indexed MAX), so a commit
            # that writes thousands of events costs no rows read here.
            self.cursor = await asyncio.to_thread(self.reader.last_event_seq)
            return
        for _ in range(10):  # bounded per look; the next look goes on where this one ended
            rows = await asyncio.to_thread(self.reader.events_after, self.cursor,
                                           limit=self.config.batch)
            for r in rows:
                event = DeviceEvent(r.device_id, r.at, r.kind, r.message, r.revision)
                self._route(NotifyEvent(r.seq, r.collection_id, event))
                self.cursor = r.seq
            if len(rows) < self.config.batch:
                return

    def _route(self, event: NotifyEvent) -> None:
        for name in routed(self.notifications, event):
            live = self._live.get(name)
            if live is None:
                continue  # its variable is missing: said once at configuration
            if live.provider.kind is ProviderKind.SLACK:
                name_of = self._names.get(event.collection_id or "", "")
                request = slack_request(live.url, event, name_of)
            else:
                key = live.secret.encode() if live.secret is not None else None
                request = webhook_request(live.provider, live.url, key, event)
            live.sender.offer(request, event.seq)

    async def _update_statuses(self) -> None:
        hosts = [live for live in self._live.values() if live.provider.kind.commit_status]
        if not hosts or not self._rollouts:
            return
        # Counts are read only while the store holds exactly the revision whose rollouts
        # we track (before and after the query): under an older one a rollout just
        # started would read as done, under a newer one an old commit would be re-judged.
        revision = self.revision
        statuses = await asyncio.to_thread(self._statuses_at, revision)
        if statuses is None or revision != self.revision:
            return
        for status in statuses:
            rollout = self._rollouts.get(status.collection_id)
            if rollout is None:
                continue
            found = rollout_status(rollout.sha, status)
            for live in hosts:
                if self._selects(live.provider, status.collection_id):
                    self._post(live, found)

    def _statuses_at(self, revision: str) -> list[CollectionStatus] | None:
        if self.reader.applied_revision() != revision:
            return None
        statuses = self.reader.collection_statuses()
        return statuses if self.reader.applied_revision() == revision else None

    def _selects(self, provider: Provider, collection_id: str) -> bool:
        return any(a.selects_collection(collection_id)
                   for a in self.notifications.alerts_for(provider.name))

    def _post(self, live: _Live, status: CommitStatus) -> None:
        """Queue the status unless it says what was last queued or posted; a `pending`
        whose description alone changed waits `status_interval` (a big rollout changes
        its counts many times a second, and git hosts rate-limit)."""
        key = f"{live.provider.name}|{status.collection_id}"
        last = self._queued.get(key) or self._posted.get(key)
        if last == status:
            return
        now = self.clock()
        if (last is not None and last.sha == status.sha and last.state is State.PENDING
                and status.state is State.PENDING
                and now - self._last_pending.get(key, -1e18) < self.config.status_interval):
            return
        if status.state is State.PENDING:
            self._last_pending[key] = now
        request = status_request(live.provider, live.secret or "", status)
        self._queued[key] = status
        if not live.sender.offer(request, None, self._on_posted(key, status)):
            self._queued.pop(key, None)

    def _on_posted(self, key: str, status: CommitStatus) -> Callable[[bool], None]:
        def done(delivered: bool) -> None:
            if self._queued.get(key) == status:
                self._queued.pop(key)
            if delivered:
                self._posted[key] = status
        return done

    def _supersede(self, collection_id: str, sha: str, by: str) -> None:
        """A rollout replaced before it finished: its `pending` status says so."""
        for live in self._live.values():
            key = f"{live.provider.name}|{collection_id}"
            last = self._queued.get(key) or self._posted.get(key)
            if live.provider.kind.commit_status and last is not None and last.sha == sha \
                    and last.state is State.PENDING:
                self._post(live, superseded(sha, collection_id, by))

    # --- providers ---------------------------------------------------------------------
    async def _configure(self, notifications: Notifications) -> None:
        """Keep the sender (and what it has queued) of every provider whose identity did
        not change, start one per new provider, stop the others; a provider whose
        environment variable is missing is an error for it alone."""
        self.notifications = notifications
        wanted = {p.name: p for p in notifications.providers}
        found = {name: self._resolve(p) for name, p in wanted.items()}
        for name in list(self._live):
            await self._keep_or_stop(name, wanted.get(name), found.get(name))
        self.errors = {}
        for name, provider in wanted.items():
            resolved = found[name]
            if name in self._live:
                continue
            if isinstance(resolved, str):
                self.errors[name] = resolved
                log.error("notification provider %r disabled: %s", name, resolved)
                continue
            url, secret = resolved
            sender = Sender(name, self.config.delivery, self.clock)
            sender.start()
            self._live[name] = _Live(provider, url, secret, sender)

    async def _keep_or_stop(self, name: str, provider: Provider | None,
                            resolved: tuple[str, str | None] | str | None) -> None:
        """The same name, kind and address (URL, and repository for a git host): the
        new settings apply to what is queued from now on and the queue stays (what it
        holds was built with the old secret and format). Anything else is another
        receiver: what the old one had queued is dropped, and says so."""
        live = self._live[name]
        if provider is not None and isinstance(resolved, tuple) \
                and _identity(provider, resolved[0]) == _identity(live.provider, live.url):
            live.provider, live.secret = provider, resolved[1]
            return
        del self._live[name]
        queued = live.sender.queued()
        await live.sender.close()
        if queued:
            why = "was removed" if provider is None else "changed its address or kind"
            log.warning("notification provider %r %s: %d queued requests dropped", name,
                        why, queued)

    def _resolve(self, provider: Provider) -> tuple[str, str | None] | str:
        """(URL, secret) from the manifest and the environment, or what is missing."""
        url = provider.address
        if provider.address_env is not None:
            url = self.env.get(provider.address_env)
            if not url:
                return f"environment variable {provider.address_env} is not set (addressFrom)"
        secret = None
        if provider.secret_env is not None:
            secret = self.env.get(provider.secret_env)
            if not secret:
                return f"environment variable {provider.secret_env} is not set"
        return url or "", secret

    # --- persistence -------------------------------------------------------------------
    async def _save(self, force: bool = False) -> None:
        """Persist what a restart needs when it changed, and the counters (for operators
        reading the state file) at most every STATS_EVERY seconds. The record is built on
        the loop, which alone changes these dicts; only the write runs in a thread."""
        state = self._record()
        stats = self.stats()
        now = self.clock()
        stale = stats != self._saved_stats and now - self._saved_at >= STATS_EVERY
        if state != self._saved or stale or force:
            self._saved, self._saved_stats, self._saved_at = state, stats, now
            await asyncio.to_thread(self.persist, {**state, "providers": stats})

    def _record(self) -> dict[str, object]:
        cursor = min([self.cursor] + [live.sender.safe_cursor(self.cursor)
                                      for live in self._live.values()])
        state: dict[str, object] = {
            "cursor": cursor,
            "rollouts": {cid: [r.sha, r.fingerprint] for cid, r in self._rollouts.items()},
            "posted": {k: [s.sha, s.collection_id, s.state.value, s.description]
                       for k, s in self._posted.items()},
        }
        return state


def _identity(provider: Provider, url: str) -> tuple[object, ...]:
    """What makes two providers of one name the same receiver."""
    return provider.kind, url, provider.repository


def _mapping(state: Mapping[str, object], key: str) -> dict[str, list[str]]:
    found = state.get(key)
    if not isinstance(found, dict):
        return {}
    return {k: v for k, v in found.items() if isinstance(v, list)}


def _status(value: list[str]) -> CommitStatus:
    sha, collection_id, state, description = value
    return CommitStatus(sha, collection_id, State(state), description)

