"""What the dashboard's bars and error lines are made of (`reconciler.api.ui.shapes`)."""

from __future__ import annotations

from reconciler.api.ui import shapes


def test_the_bar_reaches_100_only_when_every_targeted_device_is_current() -> None:
    almost = shapes.progress({"Current": 199, "Updating": 1})
    assert (almost.percent, almost.current, almost.total, almost.in_flight) == (99, 199, 200, 1)
    done = shapes.progress({"Current": 3})
    assert done.percent == 100 and [s.kind for s in done.segments] == ["current"]
    assert shapes.progress({}).total == 0


def test_segments_tile_the_bar_in_a_fixed_order() -> None:
    bar = shapes.progress({"Pending": 1, "UpdateFailed": 1, "Reverted": 1, "Current": 2,
                           "Downloading": 2, "TimedOut": 1})
    assert [(s.kind, s.devices) for s in bar.segments] == [
        ("current", 2), ("inflight", 2), ("failed", 2), ("timedout", 1), ("pending", 1)]
    assert bar.segments[0].x == 0 and bar.failed == 2
    assert round(sum(s.width for s in bar.segments)) == 1000
    for left, right in zip(bar.segments, bar.segments[1:], strict=False):
        assert abs(left.x + left.width - right.x) < 0.02


def test_a_bar_per_wave_from_the_controllers_wave_figures() -> None:
    rollout = {"waves": {"current": "canary", "index": 0, "stage": "running", "gate": "open",
                         "waves": [{"name": "canary", "members": 4, "current": 2, "failed": 1,
                                    "inFlight": 1},
                                   {"name": "the rest", "members": 6, "current": 0,
                                    "failed": 0, "inFlight": 0}]}}
    canary, rest = shapes.wave_progress(rollout)
    assert (canary.label, canary.current, canary.failed, canary.in_flight, canary.total) == (
        "canary", 2, 1, 1, 4)
    assert (rest.label, rest.percent, rest.total) == ("the rest", 0, 6)
    assert shapes.wave_summary(rollout) == "wave canary (1 of 2): open"
    assert shapes.wave_progress({}) == [] and shapes.wave_summary({}) is None


def test_a_source_error_is_split_at_file_and_line() -> None:
    assert shapes.problems(["manifests/a/devices/x.yaml:12: devices[3].endpoint: required",
                            "git: cannot fetch"]) == [
        shapes.Problem("manifests/a/devices/x.yaml:12", "devices[3].endpoint: required"),
        shapes.Problem(None, "git: cannot fetch")]
