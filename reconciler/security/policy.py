"""Which endpoints require PSK, and the rule that binds a DTLS identity to its endpoint.

The manifests say it (`security: psk | none` per collection and per device, the device's
own winning; `DesiredState.security_of`), the server's `--security-default` fills in
where they do not. `check_register` is the one rule the LwM2M registration interface
applies to Register (and Update, and a firmware download): it is pure, given the
identity the session authenticated (None over plain CoAP), the current credentials and
the policy, and returns None to allow or the reason for a 4.03. Built per revision by
`serve` (`SecurityPolicy`); called by `reconciler.lwm2m` through `SecurityView`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.model.desired import DesiredState, SecurityMode
from reconciler.security.credentials import NO_CREDENTIALS, Credentials, describe_identity

_EMPTY = DesiredState.empty()


@dataclass(frozen=True, slots=True)
class SecurityPolicy:
    """The security mode of every endpoint at one desired revision."""

    default: SecurityMode = SecurityMode.NONE
    desired: DesiredState = field(default=_EMPTY, repr=False)

    def mode_of(self, endpoint: str) -> SecurityMode:
        """The device's own `security`, else its collection's, else the default (an
        undeclared endpoint too: admission refuses it anyway)."""
        device = self.desired.device_by_endpoint(endpoint)
        declared = self.desired.security_of(device) if device is not None else None
        return declared if declared is not None else self.default

    def requires_psk(self, endpoint: str) -> bool:
        return self.mode_of(endpoint) is SecurityMode.PSK


def check_register(endpoint: str, identity: bytes | None, credentials: Credentials,
                   policy: SecurityPolicy) -> str | None:
    """None when `endpoint` may register from a session authenticated as `identity`
    (None: plain CoAP), else why not. A DTLS identity must be bound to this very
    endpoint, whatever the policy says: a device that does not require PSK may still
    use DTLS, but only as itself."""
    if identity is None:
        if policy.requires_psk(endpoint):
            return f"endpoint {endpoint[:200]!r} requires PSK, came over plain CoAP"
        return None
    credential = credentials.by_identity(identity)
    if credential is None:
        return f"no credential for identity {describe_identity(identity)}"
    if credential.endpoint != endpoint:
        return (f"identity {describe_identity(identity)} is bound to endpoint "
                f"{credential.endpoint!r}, not {endpoint[:200]!r}")
    return None


class SecurityView:
    """What the LwM2M server reads on every Register: the credentials and the policy as
    they are now (both swap while it runs: a reload, a new revision). `serve` builds it
    from the reloader and the git source; with neither it allows plain CoAP only as
    `SecurityPolicy()` says (no endpoint requires PSK)."""

    __slots__ = ("_credentials", "_policy")

    def __init__(self, credentials: Callable[[], Credentials] = lambda: NO_CREDENTIALS,
                 policy: Callable[[], SecurityPolicy] = SecurityPolicy) -> None:
        self._credentials, self._policy = credentials, policy

    @property
    def credentials(self) -> Credentials:
        return self._credentials()

    @property
    def policy(self) -> SecurityPolicy:
        return self._policy()

    def check_register(self, endpoint: str, identity: bytes | None) -> str | None:
        return check_register(endpoint, identity, self._credentials(), self._policy())

    def psk(self, identity: bytes) -> tuple[bytes, str] | None:
        """(key, endpoint) of an identity, for the DTLS handshake; None: unknown."""
        found = self._credentials().by_identity(identity)
        return None if found is None else (found.key, found.endpoint)
