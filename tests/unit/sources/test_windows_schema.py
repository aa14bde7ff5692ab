"""The keys of issue 10 items 2 and 4 in collection.yaml: maintenance windows under
`rollout.windows` and `firmware.driftPolicy`, loaded into the model or refused with
file:line."""

from __future__ import annotations

from builders.manifests import COLLECTION, Tree

from reconciler.model.desired import DriftPolicy, MaintenanceWindow, WindowGate
from reconciler.sources import load_tree, validate_tree
from reconciler.sources.durations import format_duration, parse_duration

COLL = "manifests/fleet/collection.yaml"
NIGHT = """rollout:
  windows:
    - name: night
      cron: "0 2 * * *"
      duration: 2h
      timeZone: Europe/Oslo
      tags: {site: oslo}
    - name: weekend
      cron: "0 0 * * 6"
      duration: 1d
      timeZone: UTC
      gates: both
"""


def test_windows_and_drift_policy_load_into_the_model(tree: Tree) -> None:
    tree.write(COLL, COLLECTION.replace("firmware:\n", "firmware:\n  driftPolicy: report\n")
               + NIGHT)
    [collection] = load_tree(tree.root).collections.values()
    night, weekend = collection.rollout.windows
    assert night == MaintenanceWindow("night", "0 2 * * *", 7200.0, "Europe/Oslo",
                                      WindowGate.EXECUTE, {"site": "oslo"})
    assert (weekend.gates, weekend.duration, dict(weekend.tags)) == (WindowGate.BOTH,
                                                                    86400.0, {})
    assert collection.drift_policy is DriftPolicy.REPORT


def test_drift_policy_defaults_to_correct_and_windows_to_none(tree: Tree) -> None:
    [collection] = load_tree(tree.root).collections.values()
    assert collection.drift_policy is DriftPolicy.CORRECT
    assert collection.rollout.windows == ()


def test_a_broken_window_is_refused_with_file_and_line(tree: Tree) -> None:
    broken = (NIGHT.replace('"0 2 * * *"', '"0 25 * * *"').replace("2h", "10m")
              .replace("timeZone: UTC", "timeZone: Europe/Osl0"))
    tree.write(COLL, COLLECTION + broken)
    first = len(COLLECTION.splitlines())
    assert [str(p) for p in validate_tree(tree.root)] == [
        f"{COLL}:{first + 4}: rollout.windows[0].cron: not a cron expression (Bad hour): "
        'write five fields like "0 2 * * *" (minute hour day month weekday)',
        f"{COLL}:{first + 5}: rollout.windows[0].duration: a window shorter than 15m "
        "cannot hold an install (the default update_timeout)",
        f"{COLL}:{first + 11}: rollout.windows[1].timeZone: unknown time zone "
        "'Europe/Osl0': write an IANA name like \"Europe/Oslo\" or \"UTC\"",
    ]


def test_a_drift_policy_outside_the_two_is_refused(tree: Tree) -> None:
    tree.write(COLL, COLLECTION.replace("firmware:\n", "firmware:\n  driftPolicy: fix\n"))
    [problem] = validate_tree(tree.root)
    assert (problem.field, problem.message) == (
        "firmware.driftPolicy", "must be one of 'correct' or 'report', got 'fix'")


def test_durations_parse_and_format_both_ways() -> None:
    assert [parse_duration(t) for t in ("30s", "15m", "2h", "1d")] == [30, 900, 7200, 86400]
    assert [format_duration(s) for s in (30, 900, 5400, 7200, 86400)] == [
        "30s", "15m", "90m", "2h", "1d"]
    for bad in ("2 hours", "1.5h", "-3m", ""):
        try:
            parse_duration(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} parsed")
