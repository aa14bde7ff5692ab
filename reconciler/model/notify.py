"""Notifications declared in git: providers (where to send) and alerts (what to send).

`manifests/notifications.yaml`, parsed and checked by `reconciler.sources.notifications`,
becomes one `Notifications` value inside the `DesiredState`; `reconciler.notify` reads it
to route device events to webhooks and chat and to post commit statuses on the git host.
Secrets are never values here: only the names of the environment variables holding them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class ProviderKind(StrEnum):
    WEBHOOK = "webhook"  # JSON (or CloudEvents) signed with HMAC-SHA256
    SLACK = "slack"  # incoming-webhook compatible {"text": ...}
    GITHUB = "github"  # commit statuses: POST /repos/{owner}/{repo}/statuses/{sha}
    GITLAB = "gitlab"  # commit statuses: POST /projects/{id}/statuses/{sha}

    @property
    def commit_status(self) -> bool:
        """Posts the rollout's outcome on the commit instead of forwarding events."""
        return self in (ProviderKind.GITHUB, ProviderKind.GITLAB)


class Severity(IntEnum):
    """How bad an event is; an alert sends the events at or above its own."""

    INFO = 0
    WARNING = 1
    ERROR = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    kind: ProviderKind
    address: str | None = None  # URL written in the repo (webhook URL or API base URL)
    address_env: str | None = None  # env var holding the URL when the URL is a secret
    secret_env: str | None = None  # env var: HMAC key (webhook) or API token (git hosts)
    repository: str | None = None  # github `owner/repo`; gitlab project id or path
    cloudevents: bool = False  # webhook body as a CloudEvent (structured mode)


@dataclass(frozen=True, slots=True)
class Alert:
    name: str
    provider: str
    collections: frozenset[str] = frozenset()  # collection ids; empty: every collection
    severity: Severity = Severity.INFO  # the lowest severity sent
    kinds: frozenset[str] = frozenset()  # event kinds; empty: every kind

    def selects_collection(self, collection_id: str) -> bool:
        return not self.collections or collection_id in self.collections


@dataclass(frozen=True, slots=True)
class Notifications:
    providers: tuple[Provider, ...] = ()
    alerts: tuple[Alert, ...] = ()

    def alerts_for(self, provider: str) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.provider == provider)


NO_NOTIFICATIONS = Notifications()
