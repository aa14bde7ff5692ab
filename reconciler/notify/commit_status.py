"""Commit statuses for the revision being rolled out: pure functions, no I/O.

A collection's rollout belongs to the revision that last changed what it rolls out
(its target, management, guards or devices): `fingerprints` hashes exactly that per
collection, so a commit that touches another collection (or nothing the engine reads)
leaves the earlier revision's status running. `rollout_status` turns the store's
collection status into `pending` / `success` / `failure` with a description such as
"fota: 38/40 Current, 2 failed"; `github_request` and `gitlab_request` build the git
hosts' API calls. Called by `reconciler.notify.notifier`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote

from reconciler.model.desired import DesiredState, Management
from reconciler.model.notify import Provider, ProviderKind
from reconciler.model.status import UpdateState
from reconciler.notify.messages import Request
from reconciler.store.views import CollectionStatus

CONTEXT_PREFIX = "fota/"  # the status context is fota/<collection id>
_GITLAB_STATE = {"pending": "running", "success": "success", "failure": "failed",
                 "error": "canceled"}  # GitLab's words for the same four outcomes


class State(StrEnum):
    PENDING = "pending"  # the rollout runs
    SUCCESS = "success"  # every device Current
    FAILURE = "failure"  # halted, or settled with failed devices
    ERROR = "error"  # superseded by a later revision before it finished


@dataclass(frozen=True, slots=True)
class CommitStatus:
    sha: str
    collection_id: str
    state: State
    description: str

    @property
    def context(self) -> str:
        return CONTEXT_PREFIX + self.collection_id


def fingerprints(desired: DesiredState) -> dict[str, str]:
    """collection id -> digest of what its rollout is made of, for every managed
    collection (a disabled one rolls nothing out). O(devices): run it off the loop."""
    parts: dict[str, list[str]] = {}
    for cid, c in desired.collections.items():
        if c.management is not Management.DISABLED:
            parts[cid] = [f"{c.management}|{c.target_image_id}|{c.rollout!r}"]
    for device in sorted(desired.devices.values(), key=lambda d: d.device_id):
        found = parts.get(device.collection_id)
        if found is not None:
            found.append(f"{device.device_id}|{desired.effective_target(device)}")
    return {cid: hashlib.sha256("\n".join(lines).encode()).hexdigest()
            for cid, lines in parts.items()}


def rollout_status(sha: str, status: CollectionStatus) -> CommitStatus:
    """`failure` once the rollout halted or settled with failed devices, `success` once
    every device is Current, `pending` while any device still has to move."""
    counts = status.counts  # devices without a target (device scope) have no state
    total = sum(counts.values())
    current = counts.get(UpdateState.CURRENT.value, 0)
    failed = sum(n for s, n in counts.items() if UpdateState(s).terminal)
    description = f"fota: {current}/{total} Current"
    if failed:
        description += f", {failed} failed"
    if status.rollout.get("halted"):
        return CommitStatus(sha, status.collection_id, State.FAILURE, description + ", halted")
    if current + failed < total:
        state = State.PENDING
    else:
        state = State.FAILURE if failed else State.SUCCESS
    return CommitStatus(sha, status.collection_id, state, description)


def superseded(sha: str, collection_id: str, by: str) -> CommitStatus:
    return CommitStatus(sha, collection_id, State.ERROR,
                        f"fota: superseded by {by[:12]} before it finished")


def status_request(provider: Provider, token: str, status: CommitStatus,
                   target_url: str | None = None) -> Request:
    if provider.kind is ProviderKind.GITHUB:
        return github_request(provider, token, status, target_url)
    return gitlab_request(provider, token, status, target_url)


def github_request(provider: Provider, token: str, status: CommitStatus,
                   target_url: str | None = None) -> Request:
    """POST {base}/repos/{owner}/{repo}/statuses/{sha} (GitHub's commit statuses API)."""
    base = (provider.address or "").rstrip("/")
    url = f"{base}/repos/{provider.repository}/statuses/{status.sha}"
    body: dict[str, object] = {"state": status.state.value, "context": status.context,
                               "description": status.description[:140]}
    if target_url:
        body["target_url"] = target_url
    return Request(url, json.dumps(body).encode(), (
        ("Accept", "application/vnd.github+json"), ("Authorization", f"Bearer {token}"),
        ("X-GitHub-Api-Version", "2022-11-28"), ("Content-Type", "application/json")))


def gitlab_request(provider: Provider, token: str, status: CommitStatus,
                   target_url: str | None = None) -> Request:
    """POST {base}/projects/{id}/statuses/{sha} (GitLab's commit status API); a project
    path is URL-encoded as GitLab wants (`group%2Fproject`)."""
    base = (provider.address or "").rstrip("/")
    project = quote(provider.repository or "", safe="")
    url = f"{base}/projects/{project}/statuses/{status.sha}"
    body: dict[str, object] = {"state": _GITLAB_STATE[status.state.value],
                               "name": status.context, "description": status.description}
    if target_url:
        body["target_url"] = target_url
    return Request(url, json.dumps(body).encode(), (
        ("PRIVATE-TOKEN", token), ("Content-Type", "application/json")))
