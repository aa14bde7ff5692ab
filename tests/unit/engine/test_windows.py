"""Maintenance windows as the engine decides them, from an injected clock: openings
that cross midnight, the DST changes of Europe/Oslo, the union of several windows, a
device Downloaded outside its window, a download held, tags, the bounded re-check."""

from __future__ import annotations

from datetime import UTC, datetime

from builders import NEW, collection, desired_state, device, registration, report
from builders.engine import delta

from reconciler.engine import DEFAULT_CONFIG, Execute, Wait, WriteUri, decide
from reconciler.engine import windows as win
from reconciler.model.desired import DesiredState, MaintenanceWindow, RolloutPolicy, WindowGate
from reconciler.model.lwm2m import FirmwareState as F
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState as S

OSLO = "Europe/Oslo"
H = 3600.0


def utc(*fields: int) -> float:
    return datetime(*fields, tzinfo=UTC).timestamp()  # type: ignore[misc]


def window(cron: str = "0 2 * * *", hours: float = 2, zone: str = OSLO,
           gates: WindowGate = WindowGate.EXECUTE, name: str = "night",
           tags: dict[str, str] | None = None) -> MaintenanceWindow:
    return MaintenanceWindow(name, cron, hours * H, zone, gates, tags or {})


def opening(w: MaintenanceWindow, now: float) -> tuple[float, float]:
    o = win.occurrence(w, now)
    return o.start, o.end


def test_a_window_crossing_midnight_is_open_on_both_sides_of_it() -> None:
    late = window("0 23 * * *", hours=3)  # 23:00-02:00 Oslo (CET in winter: UTC+1)
    evening, after_midnight = utc(2026, 11, 30, 22, 30), utc(2026, 11, 30, 23, 30)
    assert opening(late, evening) == (utc(2026, 11, 30, 22), utc(2026, 12, 1, 1))
    assert opening(late, after_midnight) == (utc(2026, 11, 30, 22), utc(2026, 12, 1, 1))
    # closed from 02:00 Oslo until 23:00 the same day
    assert opening(late, utc(2026, 12, 1, 1)) == (utc(2026, 12, 1, 22), utc(2026, 12, 2, 1))


def test_the_spring_dst_change_in_oslo_moves_and_keeps_openings() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST. 02:30 does not exist: cron fires at
    # 03:00 CEST (01:00Z); the next day 02:30 CEST is 00:30Z.
    half_past_two = window("30 2 * * *", hours=1)
    assert opening(half_past_two, utc(2026, 3, 28, 23)) == (utc(2026, 3, 29, 1),
                                                            utc(2026, 3, 29, 2))
    assert opening(half_past_two, utc(2026, 3, 29, 2)) == (utc(2026, 3, 30, 0, 30),
                                                           utc(2026, 3, 30, 1, 30))
    # An opening that spans the change lasts its duration of elapsed time: 01:00 CET
    # (00:00Z) for 2h ends at 04:00 CEST.
    one_am = window("0 1 * * *", hours=2)
    assert opening(one_am, utc(2026, 3, 29, 1, 30)) == (utc(2026, 3, 29, 0),
                                                        utc(2026, 3, 29, 2))


def test_the_autumn_dst_change_opens_a_repeated_hour_once() -> None:
    # 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice, fires once.
    half_past_two = window("30 2 * * *", hours=1)
    assert opening(half_past_two, utc(2026, 10, 24, 22)) == (utc(2026, 10, 25, 0, 30),
                                                             utc(2026, 10, 25, 1, 30))
    assert opening(half_past_two, utc(2026, 10, 25, 1, 30)) == (utc(2026, 10, 26, 1, 30),
                                                                utc(2026, 10, 26, 2, 30))


def test_back_to_back_openings_merge_into_one() -> None:
    hourly = window("0 * * * *", hours=2)  # every hour for 2h: never closes
    start, end = opening(hourly, utc(2026, 11, 30, 12, 30))
    assert start <= utc(2026, 11, 30, 12, 30) < end
    assert end - start > 24 * H


def test_several_windows_allow_a_step_when_any_one_is_open() -> None:
    night, noon = window("0 2 * * *"), window("0 12 * * *", name="noon", zone="UTC")
    at_noon, at_ten = utc(2026, 11, 30, 12, 30), utc(2026, 11, 30, 10)
    assert win.closed_for((night, noon), WindowGate.EXECUTE, at_noon) is None
    closed = win.closed_for((night, noon), WindowGate.EXECUTE, at_ten)
    assert closed is not None and (closed.window.name, closed.opening.start) == (
        "noon", utc(2026, 11, 30, 12))
    # a window that gates downloads only never holds Execute
    download = window("0 2 * * *", gates=WindowGate.DOWNLOAD)
    assert win.closed_for((download,), WindowGate.EXECUTE, at_ten) is None
    both = window("0 2 * * *", gates=WindowGate.BOTH)
    assert win.closed_for((both,), WindowGate.DOWNLOAD, at_ten) is not None


def test_the_opening_is_computed_once_per_window_while_its_answer_holds() -> None:
    w = window("17 3 * * *", hours=1)  # a key no other test uses
    win._memo.pop((w.cron, w.duration, w.time_zone), None)
    first = utc(2026, 11, 30, 10)
    for step in range(1000):  # a fleet's decisions during one closed stretch
        win.occurrence(w, first + step)
    computed_at, valid_until, _ = win._memo[(w.cron, w.duration, w.time_zone)]
    assert (computed_at, valid_until) == (first, utc(2026, 12, 1, 2, 17))
    win.occurrence(w, utc(2026, 12, 1, 2, 30))  # open now: computed again
    assert win._memo[(w.cron, w.duration, w.time_zone)][:2] == (
        utc(2026, 12, 1, 2, 30), utc(2026, 12, 1, 3, 17))


# --- decide(): a device under a window ------------------------------------------------

NOW = utc(2026, 11, 30, 12)  # 13:00 Oslo: the night window opens at 02:00 = 01:00Z
OPENS = utc(2026, 12, 1, 1)
HELD = ("Downloaded; Execute waits for the window night 02:00-04:00 Europe/Oslo, "
        "opens at 2026-12-01T01:00:00Z")


def fleet(*windows: MaintenanceWindow) -> DesiredState:
    """Device d1 (site: oslo) in a collection with these windows."""
    return desired_state(collection(rollout=RolloutPolicy(windows=windows)),
                         devices=[device(tags={"site": "oslo"})])


def downloading(now: float = NOW) -> DeviceProgress:
    return DeviceProgress("d1", NEW.image_id, S.DOWNLOADING, "downloading 2.0", attempts=1,
                          retries_left=3, phase_started_at=now - 60, deadline=now + 500,
                          updated_at=now - 60)


def test_a_device_downloaded_outside_its_window_waits_without_a_deadline_running() -> None:
    state = fleet(window())
    rep = report(fw=F.DOWNLOADED, at=NOW - 1)
    held = decide(delta(state, rep, registration(NOW - 100)), downloading(), NOW)
    assert held.progress is not None
    assert (held.progress.state, held.progress.message) == (S.DOWNLOADED, HELD)
    assert held.actions == (Wait(HELD, NOW + win.RECHECK),)  # re-checked, bounded
    assert held.progress.retries_left == 3 and held.progress.attempts == 1
    # the download's deadline no longer runs out while the window is closed
    assert held.progress.deadline == OPENS + DEFAULT_CONFIG.download_deadline(NEW)
    # looked at again before it opens: the same record, nothing to write
    later = decide(delta(state, rep, registration(NOW - 100)), held.progress, OPENS - 60)
    assert later.progress is held.progress and later.actions == (Wait(HELD, OPENS),)
    # the window opens: Execute, and update_timeout starts only now
    opened = decide(delta(state, rep, registration(NOW - 100)), held.progress, OPENS + 1)
    assert opened.actions == (Execute(NEW.image_id),)
    assert opened.progress is not None and opened.progress.state is S.UPDATING
    assert opened.progress.deadline == OPENS + 1 + DEFAULT_CONFIG.update_timeout


def test_inside_its_window_a_downloaded_device_is_executed_at_once() -> None:
    inside = utc(2026, 12, 1, 2)  # 03:00 Oslo
    rep = report(fw=F.DOWNLOADED, at=inside - 1)
    result = decide(delta(fleet(window()), rep, registration(NOW)), downloading(inside), inside)
    assert result.actions == (Execute(NEW.image_id),)


def test_a_window_for_other_tags_does_not_hold_the_device() -> None:
    rep = report(fw=F.DOWNLOADED, at=NOW - 1)
    state = fleet(window(tags={"site": "bergen"}))
    result = decide(delta(state, rep, registration(NOW - 100)), downloading(), NOW)
    assert result.actions == (Execute(NEW.image_id),)


def test_a_download_window_holds_the_start_and_an_execute_window_does_not() -> None:
    rep, reg = report(at=NOW - 1), registration(NOW - 100)
    pending = DeviceProgress("d1", NEW.image_id, S.PENDING, "update to 2.0 pending",
                             updated_at=NOW - 100)
    held = decide(delta(fleet(window(gates=WindowGate.DOWNLOAD)), rep, reg), pending, NOW)
    message = ("update to 2.0: the download waits for the window night 02:00-04:00 "
               "Europe/Oslo, opens at 2026-12-01T01:00:00Z")
    assert held.actions == (Wait(message, NOW + win.RECHECK),) and not held.gated
    assert held.progress is not None and held.progress.state is S.PENDING
    assert held.progress.message == message and held.progress.attempts == 0
    started = decide(delta(fleet(window()), rep, reg), pending, NOW)
    assert isinstance(started.actions[0], WriteUri)
