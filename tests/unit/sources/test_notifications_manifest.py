"""`manifests/notifications.yaml`: providers and alerts load into the DesiredState, every
mistake is a `file:line: field: message` of `fota validate`, and no message quotes a
secret written where it does not belong."""

from __future__ import annotations

import pytest
from builders.manifests import Tree

from reconciler.cli import main
from reconciler.model.notify import Alert, Provider, ProviderKind, Severity
from reconciler.sources import load_tree

FILE = "manifests/notifications.yaml"
SECRET = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX"

VALID = """\
providers:
- name: ops
  type: webhook
  address: https://hooks.example.com/fota
  secretFrom: {env: FOTA_OPS_HMAC}
  format: cloudevents
- name: chat
  type: slack
  addressFrom: {env: FOTA_SLACK_URL}
- name: gh
  type: github
  repository: acme/fleet
  tokenFrom: {env: FOTA_GITHUB_TOKEN}
- name: gl
  type: gitlab
  address: http://127.0.0.1:9/api/v4
  project: group/fleet
  tokenFrom: {env: FOTA_GITLAB_TOKEN}
alerts:
- name: failures
  provider: chat
  collections: [fleet]
  severity: error
- name: everything
  provider: ops
  kinds: [state, target]
- name: statuses
  provider: gh
"""


def test_a_valid_file_loads_providers_and_alerts(tree: Tree) -> None:
    tree.write(FILE, VALID)
    notifications = load_tree(tree.root).notifications
    assert notifications.providers == (
        Provider("ops", ProviderKind.WEBHOOK, "https://hooks.example.com/fota",
                 secret_env="FOTA_OPS_HMAC", cloudevents=True),
        Provider("chat", ProviderKind.SLACK, address_env="FOTA_SLACK_URL"),
        Provider("gh", ProviderKind.GITHUB, "https://api.github.com",
                 secret_env="FOTA_GITHUB_TOKEN", repository="acme/fleet"),
        Provider("gl", ProviderKind.GITLAB, "http://127.0.0.1:9/api/v4",
                 secret_env="FOTA_GITLAB_TOKEN", repository="group/fleet"),
    )
    # The collection is named by its directory and resolved to its id.
    assert notifications.alerts == (
        Alert("failures", "chat", frozenset({"1000aaaa"}), Severity.ERROR),
        Alert("everything", "ops", kinds=frozenset({"state", "target"})),
        Alert("statuses", "gh"),
    )


def test_without_the_file_there_are_no_notifications(tree: Tree) -> None:
    assert load_tree(tree.root).notifications.providers == ()


def test_every_mistake_is_reported_with_its_line(
    tree: Tree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.write(FILE, f"""\
        providers:
        - name: chat
          type: slack
          address: {SECRET}
        - name: gh
          type: github
          repository: acme/fleet
        - name: hook
          type: webhook
          address: https://user:pa55@example.com/x
          tokenFrom: {{env: X}}
        - name: hook
          type: teams
        alerts:
        - name: a
          provider: nobody
        - name: b
          provider: gh
          severity: error
        - name: c
          provider: hook
          collections: [fleet, nowhere]
        - name: d
          provider: hook
          kinds: [registered]
        """)
    assert main(["validate", str(tree.root)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"{FILE}:4: providers[0].address: a Slack webhook URL carries its secret: keep it in "
        "an environment variable and write addressFrom: {env: NAME}",
        f"{FILE}:5: providers[1].tokenFrom: required: the environment variable holding the "
        "API token",
        f"{FILE}:10: providers[2].address: credentials in a URL committed to git: put the URL "
        "in an environment variable and write addressFrom: {env: NAME}",
        f"{FILE}:11: providers[2].tokenFrom: a webhook is signed with secretFrom (an HMAC key)",
        f"{FILE}:12: providers[3].name: duplicate name 'hook'",
        f"{FILE}:13: providers[3].type: must be one of 'webhook', 'slack', 'github' or "
        "'gitlab', got 'teams'",
        f"{FILE}:16: alerts[0].provider: no provider named 'nobody' in providers",
        f"{FILE}:19: alerts[1].severity: a github provider posts each rollout's outcome as a "
        "commit status, not events: select collections only",
        f"{FILE}:22: alerts[2].collections[1]: no collection 'nowhere' (write its directory "
        "name under manifests/ or its collectionId)",
        f"{FILE}:25: alerts[3].kinds[0]: must be one of 'state', 'target', 'error' or "
        "'rollout', got 'registered'",
    ]
    assert "XXXXsecretXXXX" not in out and "pa55" not in out  # the values are never quoted


def test_names_are_unique_and_the_top_level_is_a_mapping(
    tree: Tree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.write(FILE, """\
        providers:
        - {name: a, type: webhook, address: "http://127.0.0.1:1/"}
        - {name: a, type: webhook, addressFrom: {env: "1BAD"}}
        """)
    assert main(["validate", str(tree.root)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{FILE}:3: providers[1].addressFrom.env: ")
    assert lines[1] == f"{FILE}:3: providers[1].name: duplicate name 'a'"
    tree.write(FILE, "- just a list\n")
    assert main(["validate", str(tree.root)]) == 1
    assert capsys.readouterr().out == f"{FILE}:1: expected a mapping at the top level\n"
