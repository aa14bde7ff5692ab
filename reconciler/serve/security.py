"""`fota serve`'s credentials and security policy (issue 12): what the LwM2M server reads.

`start_security` loads the credentials file the settings name (`--credentials` or
`FOTA_CREDENTIALS`; a bad one raises CredentialsError, since there is no last good set
yet), keeps the reloader's status in the store for /status, and builds the
`SecurityView`: the reloader's current credentials and the policy of the git source's
applied revision with `--security-default`. The server takes `view.psk` (keys by
identity) and `view.check_register` (`transport.server_options`); `revoke_on_reload`
closes the sessions of identities a reload removed or changed. `Security.run` reloads
on SIGHUP and file changes until stop. Called by `service._run`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from reconciler.model.desired import DesiredState, SecurityMode
from reconciler.security.credentials import NO_CREDENTIALS, Credentials
from reconciler.security.policy import SecurityPolicy, SecurityView
from reconciler.security.reloader import CredentialsReloader
from reconciler.serve.settings import ServeSettings
from reconciler.sources import GitSource

_EMPTY = DesiredState.empty()


class Security:
    def __init__(self, view: SecurityView, reloader: CredentialsReloader | None) -> None:
        self.view = view
        self.reloader = reloader  # None: no credentials file configured

    def revoke_on_reload(self, revoke: Callable[[set[bytes]], int]) -> Callable[[], None]:
        """After each reload, `revoke` the identities that went or changed; the remover."""
        if self.reloader is None:
            return lambda: None
        return self.reloader.subscribe(lambda old, new: _revoke(revoke, old, new))

    async def run(self, stop: asyncio.Event) -> None:
        if self.reloader is not None:
            await self.reloader.run(stop)


def changed_identities(old: Credentials, new: Credentials) -> set[bytes]:
    """Identities of `old` that `new` drops or binds to another key or endpoint."""
    return {c.identity for c in old if new.by_identity(c.identity) != c}


def _revoke(revoke: Callable[[set[bytes]], int], old: Credentials, new: Credentials) -> None:
    gone = changed_identities(old, new)
    if gone:
        revoke(gone)


class _SourcePolicy:
    """The policy of the source's applied revision, rebuilt only when that changes
    (the view is asked on every Register)."""

    def __init__(self, source: GitSource, default: SecurityMode) -> None:
        self._source = source
        self._policy = SecurityPolicy(default, _EMPTY)

    def __call__(self) -> SecurityPolicy:
        desired = self._source.current or _EMPTY
        if self._policy.desired is not desired:
            self._policy = SecurityPolicy(self._policy.default, desired)
        return self._policy


def start_security(settings: ServeSettings, source: GitSource,
                   record: Callable[[Mapping[str, object]], None]) -> Security:
    """Raises CredentialsError for a credentials file that cannot be used."""
    policy = _SourcePolicy(source, SecurityMode(settings.security_default))
    if settings.credentials is None:
        record({})  # no section in /status: forget a former run's
        return Security(SecurityView(lambda: NO_CREDENTIALS, policy), None)
    reloader = CredentialsReloader(settings.credentials, record=record)
    reloader.load()
    return Security(SecurityView(lambda: reloader.current, policy), reloader)
