"""What each provider is sent: severities, routing, signed webhook bodies (plain and
CloudEvents), Slack text, and the git hosts' commit status calls."""

from __future__ import annotations

import hashlib
import hmac
import json

from reconciler.model.desired import Management
from reconciler.model.notify import Alert, Notifications, Provider, ProviderKind, Severity
from reconciler.model.observed import DeviceEvent
from reconciler.notify.commit_status import (
    CommitStatus,
    State,
    github_request,
    gitlab_request,
    rollout_status,
)
from reconciler.notify.messages import (
    NotifyEvent,
    routed,
    severity_of,
    slack_request,
    webhook_request,
)
from reconciler.store.views import CollectionStatus

SHA = "a" * 40


def event(message: str, kind: str = "state", seq: int = 7, cid: str | None = "c1") -> NotifyEvent:
    return NotifyEvent(seq, cid, DeviceEvent("d1", 1_700_000_000.0, kind, message, SHA))


def test_severity_follows_the_state_moved_into() -> None:
    assert severity_of("state", "Updating -> UpdateFailed: result 5") is Severity.ERROR
    assert severity_of("state", "Completed -> Reverted: came back on 1.0") is Severity.ERROR
    assert severity_of("state", "Downloading -> TimedOut: overran") is Severity.WARNING
    assert severity_of("state", "Pending -> Downloading: offered") is Severity.INFO
    assert severity_of("error", "no answer") is Severity.ERROR
    assert severity_of("target", "target set to 2.0 (x)") is Severity.INFO


def test_alerts_route_by_collection_severity_and_kind_each_provider_once() -> None:
    notifications = Notifications(
        (Provider("hook", ProviderKind.WEBHOOK, "http://x"),
         Provider("chat", ProviderKind.SLACK, address_env="U"),
         Provider("gh", ProviderKind.GITHUB, "http://g", repository="o/r")),
        (Alert("all", "hook"), Alert("again", "hook", frozenset({"c1"})),
         Alert("bad", "chat", frozenset({"c1"}), Severity.ERROR),
         Alert("targets", "chat", kinds=frozenset({"target"})),
         Alert("statuses", "gh")))
    assert routed(notifications, event("Pending -> Downloading: x")) == ["hook"]
    assert routed(notifications, event("Updating -> UpdateFailed: x")) == ["chat", "hook"]
    assert routed(notifications, event("target set", "target", cid="c2")) == ["chat", "hook"]
    assert routed(notifications, event("x", cid=None)) == []  # device no longer declared


def test_a_webhook_body_is_signed_and_a_cloudevent_when_asked() -> None:
    plain = webhook_request(Provider("h", ProviderKind.WEBHOOK), "http://r/x", b"k",
                            event("Pending -> Downloading: offered"))
    headers = dict(plain.headers)
    assert headers["X-Fota-Signature"] == \
        "sha256=" + hmac.new(b"k", plain.body, hashlib.sha256).hexdigest()
    assert headers["X-Fota-Event-Id"] == "7"
    assert json.loads(plain.body) == {
        "id": "7", "collectionId": "c1", "deviceId": "d1", "kind": "state",
        "severity": "info", "message": "Pending -> Downloading: offered", "revision": SHA,
        "time": "2023-11-14T22:13:20Z"}
    ce = webhook_request(Provider("h", ProviderKind.WEBHOOK, cloudevents=True), "http://r",
                         None, event("x"))
    body = json.loads(ce.body)
    assert dict(ce.headers)["Content-Type"] == "application/cloudevents+json"
    assert "X-Fota-Signature" not in dict(ce.headers)  # no key, no signature
    assert {k: body[k] for k in ("specversion", "id", "source", "type", "subject")} == {
        "specversion": "1.0", "id": "7", "source": "urn:fota-gitops",
        "type": "io.fota-gitops.device.state", "subject": "d1"}
    assert body["data"]["deviceId"] == "d1"


def test_slack_gets_one_line_of_text() -> None:
    request = slack_request("http://s", event("Updating -> UpdateFailed: result 5"), "Trackers")
    assert json.loads(request.body) == {"text": "fota error: Trackers: device d1: Updating -> "
                                        "UpdateFailed: result 5 (revision aaaaaaaaaaaa)"}


def test_a_rollout_halt_is_an_error_of_the_collection_with_no_device() -> None:
    halt = NotifyEvent(8, "c1", DeviceEvent("", 1_700_000_000.0, "rollout",
                                            "rollout halted: 2 of 4 devices failed", SHA))
    assert halt.severity is Severity.ERROR
    assert severity_of("rollout", "rollout resumed: no longer halted (x)") is Severity.INFO
    assert json.loads(slack_request("http://s", halt, "Trackers").body) == {
        "text": "fota error: Trackers: rollout halted: 2 of 4 devices failed "
                "(revision aaaaaaaaaaaa)"}
    ce = json.loads(webhook_request(Provider("h", ProviderKind.WEBHOOK, cloudevents=True),
                                    "http://r", None, halt).body)
    assert (ce["type"], ce["subject"]) == ("io.fota-gitops.collection.rollout", "c1")


def status(counts: dict[str, int], **rollout: object) -> CollectionStatus:
    return CollectionStatus("c1", Management.COLLECTION, "img", sum(counts.values()),
                            counts, rollout)


def test_the_rollout_status_says_how_far_it_came() -> None:
    assert rollout_status(SHA, status({"Current": 38, "Downloading": 2})) == \
        CommitStatus(SHA, "c1", State.PENDING, "fota: 38/40 Current")
    assert rollout_status(SHA, status({"Current": 40})).state is State.SUCCESS
    assert rollout_status(SHA, status({"Current": 38, "UpdateFailed": 1, "Reverted": 1})) == \
        CommitStatus(SHA, "c1", State.FAILURE, "fota: 38/40 Current, 2 failed")
    assert rollout_status(SHA, status({"Current": 3, "UpdateFailed": 2, "Pending": 5},
                                      halted=True)) == \
        CommitStatus(SHA, "c1", State.FAILURE, "fota: 3/10 Current, 2 failed, halted")


def test_the_git_hosts_get_their_own_api_calls() -> None:
    found = CommitStatus(SHA, "c1", State.PENDING, "fota: 1/2 Current")
    gh = github_request(Provider("gh", ProviderKind.GITHUB, "http://h/", repository="o/r"),
                        "tok", found)
    assert gh.url == f"http://h/repos/o/r/statuses/{SHA}"
    assert json.loads(gh.body) == {"state": "pending", "context": "fota/c1",
                                   "description": "fota: 1/2 Current"}
    assert dict(gh.headers)["Authorization"] == "Bearer tok"
    gl = gitlab_request(Provider("gl", ProviderKind.GITLAB, "http://l/api/v4",
                                 repository="group/fleet"), "tok", found)
    assert gl.url == f"http://l/api/v4/projects/group%2Ffleet/statuses/{SHA}"
    assert json.loads(gl.body) == {"state": "running", "name": "fota/c1",
                                   "description": "fota: 1/2 Current"}
    assert dict(gl.headers)["PRIVATE-TOKEN"] == "tok"
