"""`fota serve`'s credentials and security policy (issue 12): what the LwM2M server reads.

`start_security` loads the credentials file the settings name (`--credentials` or
`FOTA_CREDENTIALS`; a bad one raises CredentialsError, since there is no last good set
yet), keeps the reloader's status in the store for /status, and builds the
`SecurityView`: the reloader's current credentials and the policy of the git source's
applied revision with `--security-default`. The server takes `view.psk` (keys by
identity) and `view.check_register` (`transport.server_options`); `revoke_on_reload`
closes the sessions of identities a reload removed or changed. `Security.run` reloads
on SIGHUP and file changes until stop. With `--coap off`, `warn_unreachable` names the
declared endpoints that have no credential and so cannot register (counted in a worker
thread, at start, for each revision and after each reload: a fleet's worth of
lookups). Called by `service._run`.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable, Mapping

from reconciler.model.desired import DesiredState, SecurityMode
from reconciler.security.credentials import NO_CREDENTIALS, Credentials
from reconciler.security.policy import SecurityPolicy, SecurityView
from reconciler.security.reloader import CredentialsReloader
from reconciler.serve.settings import ServeSettings
from reconciler.sources import GitSource

_EMPTY = DesiredState.empty()
UNREACHABLE_SHOWN = 5  # endpoints named in the `--coap off` warning (the count says all)
log = logging.getLogger("reconciler.serve")


class Security:
    def __init__(self, view: SecurityView, reloader: CredentialsReloader | None, *,
                 coaps_only: bool = False,
                 current: Callable[[], DesiredState] = lambda: _EMPTY) -> None:
        self.view = view
        self.reloader = reloader  # None: no credentials file configured
        self._coaps_only = coaps_only  # `--coap off`: a device without a key cannot talk
        self._current = current  # the applied revision, for the warning after a reload
        self._warned: tuple[int, str] | None = None  # read and written on the loop only
        self._warning = asyncio.Lock()  # one count at a time: the last one asked wins
        self._reloaded = asyncio.Event()  # set by a reload, cleared by `run`'s rewarn

    async def warn_unreachable(self, desired: DesiredState) -> list[str]:
        """With `--coap off`: the declared endpoints without a credential, which cannot
        register at all (`security: none` or not, only a DTLS session reaches the
        server). Logged when the set changes (each revision and reload asks), never
        per device; returns the first `UNREACHABLE_SHOWN` of them in order. The count
        (a fleet's worth of lookups) runs in a worker thread; `_warned` is compared and
        assigned here on the loop, so the thread shares no state with it."""
        if not self._coaps_only:
            return []
        async with self._warning:
            count, shown = await asyncio.to_thread(self._unreachable, desired,
                                                   self.view.credentials)
            seen = (count, ", ".join(shown))
            if count and seen != self._warned:
                more = ", ..." if count > UNREACHABLE_SHOWN else ""
                log.warning("--coap off: %d declared endpoints have no PSK credential and "
                            "cannot register (no plain CoAP listener): %s%s", count,
                            seen[1], more)
            self._warned = seen
        return shown

    def on_reload(self, _old: Credentials, _new: Credentials) -> None:
        """A reloader's subscriber (on the loop): `run` counts again, off the loop."""
        self._reloaded.set()

    @staticmethod
    def _unreachable(desired: DesiredState,
                     credentials: Credentials) -> tuple[int, list[str]]:
        """How many endpoints have no credential and the first few. In a worker thread:
        Python-level steps only, no sort of the whole fleet (one C call that would hold
        the GIL)."""
        missing = [d.endpoint for d in desired.devices.values()
                   if credentials.for_endpoint(d.endpoint) is None]
        return len(missing), heapq.nsmallest(UNREACHABLE_SHOWN, missing)

    def revoke_on_reload(self, revoke: Callable[[set[bytes]], int]) -> Callable[[], None]:
        """After each reload, `revoke` the identities that went or changed; the remover."""
        if self.reloader is None:
            return lambda: None
        return self.reloader.subscribe(lambda old, new: _revoke(revoke, old, new))

    async def run(self, stop: asyncio.Event) -> None:
        """Reload the credentials until `stop`; with `--coap off` warn again after each
        reload (reloads in a burst make one count)."""
        if self.reloader is None:
            return
        rewarn = asyncio.create_task(self._rewarn()) if self._coaps_only else None
        try:
            await self.reloader.run(stop)
        finally:
            if rewarn is not None:
                rewarn.cancel()
                await asyncio.gather(rewarn, return_exceptions=True)

    async def _rewarn(self) -> None:
        while True:
            await self._reloaded.wait()
            self._reloaded.clear()
            await self.warn_unreachable(self._current())


def changed_identities(old: Credentials, new: Credentials) -> set[bytes]:
    """Identities of `old` that `new` drops or binds to another key or endpoint."""
    return {c.identity for c in old if new.by_identity(c.identity) != c}


def _revoke(revoke: Callable[[set[bytes]], int], old: Credentials, new: Credentials) -> None:
    gone = changed_identities(old, new)
    if gone:
        revoke(gone)


class _SourcePolicy:
    """The policy of the source's applied revision, made on each call (a two-field
    frozen dataclass: cheaper than the Register that asks). Nothing is kept between
    calls: a kept policy held the revision before the last one alive, 200,000 devices
    after a big revert, until the next device registered."""

    def __init__(self, source: GitSource, default: SecurityMode) -> None:
        self._source = source
        self._default = default

    def __call__(self) -> SecurityPolicy:
        return SecurityPolicy(self._default, self._source.current or _EMPTY)


def start_security(settings: ServeSettings, source: GitSource,
                   record: Callable[[Mapping[str, object]], None]) -> Security:
    """Raises CredentialsError for a credentials file that cannot be used."""
    policy = _SourcePolicy(source, SecurityMode(settings.security_default))
    coaps_only = settings.coap == "off"
    if settings.credentials is None:
        record({})  # no section in /status: forget a former run's
        return Security(SecurityView(lambda: NO_CREDENTIALS, policy), None,
                        coaps_only=coaps_only)
    reloader = CredentialsReloader(settings.credentials, record=record)
    reloader.load()
    security = Security(SecurityView(lambda: reloader.current, policy), reloader,
                        coaps_only=coaps_only, current=lambda: source.current or _EMPTY)
    if coaps_only:  # a reload may add or take away the keys of declared devices
        reloader.subscribe(security.on_reload)
    return security
