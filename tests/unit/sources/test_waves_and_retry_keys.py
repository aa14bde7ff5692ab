"""`rollout.waves`, `rollout.retry` and a device's `retry` load into the model; bad
values are reported at their line in plain words."""

from __future__ import annotations

import pytest
from builders.manifests import COLLECTION, Tree

from reconciler.cli import main
from reconciler.model.desired import FailureThreshold, RolloutPolicy, Wave
from reconciler.sources import load_tree, validate_tree
from reconciler.sources.parsing import parse_collection

WAVES = COLLECTION + """\
rollout:
  maxConcurrent: 5
  retry: 2
  waves:
    - name: canary
      tags: {site: lab}
      share: "5%"
      soak: 30m
      minSuccess: "95%"
      failureThreshold: 1
    - name: early
      share: "25%"
"""


def test_waves_and_retry_load_into_the_rollout_policy(tree: Tree) -> None:
    tree.write("manifests/fleet/collection.yaml", WAVES)
    tree.write("manifests/fleet/devices/a.yaml",
               'devices:\n- {"deviceId": "2000aaaa", "endpoint": "e1", "retry": 3}\n')
    desired = load_tree(tree.root)
    [collection] = desired.collections.values()
    assert collection.rollout == RolloutPolicy(
        max_concurrent=5, retry=2,
        waves=(Wave("canary", (("site", "lab"),), 5.0, 1800.0, 95.0, FailureThreshold(count=1)),
               Wave("early", share=25.0)))
    device = desired.devices["2000aaaa"]
    assert device.retry == 3
    assert desired.retry_of(device) == 5


def test_a_device_in_block_yaml_keeps_its_retry(tree: Tree) -> None:
    tree.write("manifests/fleet/devices/a.yaml",
               "devices:\n  - endpoint: e1\n    deviceId: 2000aaaa\n    retry: 1\n")
    assert load_tree(tree.root).devices["2000aaaa"].retry == 1


@pytest.mark.parametrize(
    ("rollout", "problem"),
    [
        ('  waves:\n    - name: a\n      share: "120%"',
         (9, "rollout.waves[0].share", 'write a percentage from "0.1%" to "100%", like "5%"')),
        ("  waves:\n    - name: a\n      soak: 3 weeks",
         (9, "rollout.waves[0].soak",
          'write a duration like "30s", "15m", "2h" or "1d"')),
        ("  waves:\n    - name: a\n    - name: a",
         (8, "rollout.waves", "wave names must be unique: a repeated")),
        ("  waves:\n    - share: 5%", (8, "rollout.waves[0].name", "required key is missing")),
        ("  retry: -1", (7, "rollout.retry", "must be at least 0, got -1")),
        ("  waves:\n" + "".join(f"    - name: w{n}\n" for n in range(21)),
         (8, "rollout.waves", "list should have at most 20 items after validation, not 21")),
    ],
)
def test_bad_wave_and_retry_values_are_reported_where_written(
        rollout: str, problem: tuple[int, str, str]) -> None:
    assert parse_collection(COLLECTION + "rollout:\n" + rollout + "\n").problems == [problem]


def test_a_negative_device_retry_is_an_error(tree: Tree) -> None:
    tree.write("manifests/fleet/devices/a.yaml",
               'devices:\n- {"endpoint": "e1", "retry": -2}\n')
    assert [str(p) for p in validate_tree(tree.root)] == [
        "manifests/fleet/devices/a.yaml:2: devices[0].retry: must be at least 0, got -2"]


def test_shares_of_waves_selecting_the_same_devices_may_not_pass_100_percent() -> None:
    rollout = ('  waves:\n    - name: a\n      share: "60%"\n    - name: lab\n'
               '      tags: {site: lab}\n      share: "80%"\n    - name: b\n      share: "50%"')
    assert parse_collection(COLLECTION + "rollout:\n" + rollout + "\n").problems == [
        (8, "rollout.waves", "the shares of waves selecting the same devices add up to 110% "
         "(a 60%, b 50%); at most 100%")]


def test_validate_warns_of_a_wave_tag_no_device_has_and_still_passes(
        tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    tree.write("manifests/fleet/collection.yaml", WAVES + "    - name: oslo\n"
               "      tags: {city: oslo}\n")
    tree.write("manifests/fleet/devices/a.yaml",
               'devices:\n- {"endpoint": "e1", "tags": {"site": "lab"}}\n')
    assert main(["validate", str(tree.root)]) == 0
    coll = "manifests/fleet/collection.yaml"
    assert capsys.readouterr().out.splitlines() == [
        f"{coll}:19: rollout.waves[2].tags.city: warning: no device of collection 1000aaaa "
        "has the tag 'city': wave oslo selects no device"]
    assert main(["validate", str(tree.root), "--format", "github"]) == 0
    assert capsys.readouterr().out.startswith(f"::warning file={coll},line=19::")


def test_validate_warns_of_a_window_tag_no_device_has_and_still_passes(
        tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    tree.write("manifests/fleet/collection.yaml", COLLECTION + (
        "rollout:\n  windows:\n    - name: night\n      cron: \"0 2 * * *\"\n"
        "      duration: 2h\n      timeZone: Europe/Oslo\n      tags: {city: oslo}\n"))
    tree.write("manifests/fleet/devices/a.yaml",
               'devices:\n- {"endpoint": "e1", "tags": {"site": "lab"}}\n')
    assert main(["validate", str(tree.root)]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("manifests/fleet/collection.yaml:")
    assert line.endswith("rollout.windows[0].tags.city: warning: no device of collection "
                         "1000aaaa has the tag 'city': window night selects no device")
