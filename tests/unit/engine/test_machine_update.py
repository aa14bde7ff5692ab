"""decide() during an attempt: downloading, Execute once, verifying, failures, timeouts."""

from __future__ import annotations

import pytest
from builders import NEW, T0, registration, report
from builders.engine import delta

from reconciler.engine import (
    DEFAULT_CONFIG,
    Delta,
    Execute,
    Observe,
    Probe,
    ReadState,
    Verify,
    Wait,
    WriteUri,
    decide,
)
from reconciler.engine.machine import PHASE
from reconciler.model.lwm2m import FirmwareState as F
from reconciler.model.lwm2m import UpdateResult as R
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState as S

START = T0 + 10  # the attempt began here
NOW = START + 5
DEADLINE = START + 500
RETRIES = DEFAULT_CONFIG.max_retries


def attempt(state: S = S.DOWNLOADING, **changes: object) -> DeviceProgress:
    base = DeviceProgress(
        "d1", NEW.image_id, state, "downloading 2.0", attempts=1, retries_left=RETRIES,
        phase_started_at=START, deadline=DEADLINE, updated_at=START,
    )
    return base.evolve(**changes)


def executed(state: S = S.UPDATING, **changes: object) -> DeviceProgress:
    return attempt(state, executed_at=START, **changes)


def test_initializing_moves_to_downloading_when_the_device_says_so() -> None:
    rep = report(fw=F.DOWNLOADING, at=NOW)
    result = decide(delta(rep=rep, reg=registration(), observing=True),
                    attempt(S.INITIALIZING), NOW)
    assert result.progress is not None and result.progress.state is S.DOWNLOADING
    expected = NOW + 4 * DEFAULT_CONFIG.poll_interval
    assert result.actions == (Wait("waiting for the device's next report", expected),)


def test_a_running_download_is_never_written_again() -> None:
    rep = report(fw=F.DOWNLOADING, at=NOW)
    for now in (NOW, NOW + 30, NOW + 300, DEADLINE - 1):
        result = decide(delta(rep=rep, reg=registration()), attempt(), now)
        assert not any(isinstance(a, WriteUri) for a in result.actions)


def test_without_observe_the_download_is_polled_at_the_interval() -> None:
    rep = report(fw=F.DOWNLOADING, at=NOW)
    soon = decide(delta(rep=rep, reg=registration(), can_observe=False), attempt(), NOW + 1)
    expected = NOW + DEFAULT_CONFIG.poll_interval
    assert soon.actions == (Wait("waiting for the device's next report", expected),)
    due = decide(delta(rep=rep, reg=registration(), can_observe=False), attempt(), NOW + 30)
    assert due.actions == (ReadState("polling the download"),)


@pytest.mark.parametrize("state", [S.INITIALIZING, S.DOWNLOADING])
def test_a_download_whose_observation_is_gone_renews_it_at_once(state: S) -> None:
    """After the device registered again (or our restart) nothing observes /5/0/3 and
    /5/0/5: the Observe is renewed in the same decision, not at the next poll."""
    rep = report(fw=F.DOWNLOADING, at=NOW)
    result = decide(delta(rep=rep, reg=registration()), attempt(state), NOW + 1)
    assert result.actions == (Observe(),)
    observed = decide(delta(rep=rep, reg=registration(), observing=True), attempt(), NOW + 1)
    assert not any(isinstance(a, Observe) for a in observed.actions)


def test_downloaded_executes_once_with_executed_at_recorded_first() -> None:
    rep = report(fw=F.DOWNLOADED, at=NOW)
    result = decide(delta(rep=rep, reg=registration(), observing=True), attempt(), NOW)
    assert result.actions == (Execute(NEW.image_id),)
    p = result.progress
    assert p is not None and (p.state, p.executed_at) == (S.UPDATING, NOW)
    assert result.durable  # executed_at must reach the disk before Execute is sent
    again = decide(delta(rep=rep, reg=registration(), observing=True), p, NOW + 1)
    assert not again.durable
    # the first Probe is due probe_delay after the Execute, long before the deadline
    first_probe = NOW + DEFAULT_CONFIG.probe_delay
    assert again.actions == (Wait("waiting for the device to install and restart",
                                  first_probe),)


def test_after_execute_the_device_is_probed_with_backoff_not_left_to_the_timeout() -> None:
    record, rep, asked = executed(executes=1), report(fw=F.DOWNLOADED, at=START - 1), []
    now = START
    while record.state is S.UPDATING:
        result = decide(delta(rep=rep, reg=registration(), observing=True), record, now)
        assert result.progress is not None
        record = result.progress
        if result.actions == (Probe(),):
            asked.append(now - START)
            rep = report(fw=F.UPDATING, at=now)  # installing: answers, no restart yet
        else:
            assert isinstance(result.actions[0], Wait) and result.actions[0].until is not None
            now = result.actions[0].until
    assert asked == [5, 15, 35, 75, 155, 315]  # then the deadline (500 s) ends it
    assert record.state is S.TIMED_OUT


def test_a_lost_execute_is_sent_again_once_a_probe_finds_the_download_untouched() -> None:
    probed = executed(executes=1, probes=1)
    rep = report(fw=F.DOWNLOADED, at=START + DEFAULT_CONFIG.probe_delay)
    result = decide(delta(rep=rep, reg=registration()), probed, START + 6)
    assert result.actions == (Execute(NEW.image_id),) and result.durable
    p = result.progress
    assert p is not None and (p.executes, p.probes, p.executed_at) == (2, 0, START + 6)
    assert p.message == ("Execute did not reach the device (/5/0/3 still 2, no restart); "
                         "installing 2.0 again (Execute 2 of 3)")


def test_a_device_that_never_acts_on_execute_ends_failed_saying_so() -> None:
    probed = executed(executes=3, probes=1)
    rep = report(fw=F.DOWNLOADED, at=START + DEFAULT_CONFIG.probe_delay)
    result = decide(delta(rep=rep, reg=registration()), probed, START + 6)
    assert result.progress is not None and result.progress.state is S.UPDATE_FAILED
    assert result.progress.message == ("/5/0/3 stayed 2 after Execute was sent 3 times: "
                                       "the device does not follow Object 5")


def test_a_stale_downloaded_state_never_causes_a_second_execute() -> None:
    # a notification of /5/0/5 alone right after the Execute: /5/0/3 = 2 is left over
    rep = report(fw=F.DOWNLOADED, at=START + 1)
    result = decide(delta(rep=rep, reg=registration(), observing=True),
                    executed(executes=1), START + 1)
    assert not any(isinstance(a, Execute) for a in result.actions)


def test_a_restart_after_execute_is_verified_before_anything_else() -> None:
    reg = registration(at=NOW)  # re-registered after Execute, not read yet
    result = decide(delta(rep=report(at=START), reg=reg), executed(), NOW + 1)
    assert result.actions == (Verify(NEW.image_id, NEW.version),)
    assert result.progress is not None and result.progress.state is S.COMPLETED


def test_success_only_when_the_device_reports_the_target_version() -> None:
    reg = registration(at=NOW)
    ok = decide(delta(rep=report("2.0", at=NOW + 1), reg=reg), executed(S.COMPLETED), NOW + 2)
    assert ok.progress is not None and ok.progress.state is S.CURRENT
    claimed = report("1.0", result=R.SUCCESS, at=NOW + 1)
    back = decide(delta(rep=claimed, reg=reg), executed(S.COMPLETED), NOW + 2)
    assert back.progress is not None and back.progress.state is S.REVERTED
    assert back.progress.message == "device came back running 1.0, not 2.0"


@pytest.mark.parametrize("code", [R.NOT_ENOUGH_FLASH, R.OUT_OF_RAM, R.CONNECTION_LOST])
def test_transient_update_results_retry_with_backoff(code: R) -> None:
    rep = report(fw=F.IDLE, result=code, at=NOW)
    # a 4 retries once the offers again within the attempt are spent (engine.pulling)
    spent = DEFAULT_CONFIG.max_push_resumes if code is R.CONNECTION_LOST else 0
    result = decide(delta(rep=rep, reg=registration()), attempt(resumes=spent), NOW)
    p = result.progress
    assert p is not None and p.state is S.PENDING and p.retries_left == RETRIES - 1
    assert p.next_attempt_at == NOW + DEFAULT_CONFIG.backoff_base
    assert result.actions == (Wait(p.message, NOW + DEFAULT_CONFIG.backoff_base),)


@pytest.mark.parametrize("code", [R.INTEGRITY_CHECK_FAILURE, R.UNSUPPORTED_PACKAGE_TYPE,
                                  R.INVALID_URI, R.UNSUPPORTED_PROTOCOL])
def test_terminal_update_results_fail_the_image_at_once(code: R) -> None:
    result = decide(delta(rep=report(fw=F.IDLE, result=code, at=NOW), reg=registration()),
                  attempt(), NOW)
    assert result.progress is not None and result.progress.state is S.UPDATE_FAILED
    assert result.actions == ()


@pytest.mark.parametrize("back_in", [F.DOWNLOADED, F.IDLE])
def test_update_failed_is_retried_once_then_terminal(back_in: F) -> None:
    rep = report(fw=back_in, result=R.UPDATE_FAILED, at=NOW + 1)
    first = decide(delta(rep=rep, reg=registration()), executed(), NOW + 1)
    assert first.progress is not None and first.progress.state is S.PENDING
    second = decide(delta(rep=rep, reg=registration()),
                  executed(retries_left=RETRIES - 1, attempts=2), NOW + 1)
    assert second.progress is not None and second.progress.state is S.UPDATE_FAILED


def test_an_exhausted_budget_turns_a_transient_failure_terminal() -> None:
    rep = report(fw=F.IDLE, result=R.CONNECTION_LOST, at=NOW)
    spent = attempt(retries_left=0, attempts=4, resumes=DEFAULT_CONFIG.max_push_resumes)
    result = decide(delta(rep=rep, reg=registration()), spent, NOW)
    assert result.progress is not None and result.progress.state is S.UPDATE_FAILED
    assert "no retries left" in result.progress.message


def test_a_stuck_download_times_out_and_is_retried_later() -> None:
    rep = report(fw=F.DOWNLOADING, at=NOW)
    result = decide(delta(rep=rep, reg=registration(), observing=True), attempt(), DEADLINE)
    p = result.progress
    assert p is not None and p.state is S.TIMED_OUT and p.retries_left == RETRIES - 1
    assert p.next_attempt_at == DEADLINE + DEFAULT_CONFIG.backoff_base


def test_a_device_that_never_comes_back_times_out_without_a_second_execute() -> None:
    rep = report(fw=F.DOWNLOADED, at=NOW)  # Execute may never have arrived
    for now in (NOW, DEADLINE - 1, DEADLINE):
        result = decide(delta(rep=rep, reg=registration(), observing=True), executed(), now)
        assert not any(isinstance(a, Execute) for a in result.actions)
    assert result.progress is not None and result.progress.state is S.TIMED_OUT


def test_deadlines_grow_with_the_image_so_slow_links_get_half_an_hour() -> None:
    big = NEW.__class__(**{**{f: getattr(NEW, f) for f in NEW.__slots__}, "length": 144_564})
    assert DEFAULT_CONFIG.download_deadline(big) >= 30 * 60


@pytest.mark.parametrize("code", [R.INVALID_URI, R.CONNECTION_LOST])
def test_a_download_cut_by_our_restart_starts_again_without_spending_a_retry(code: R) -> None:
    rep = report(fw=F.IDLE, result=code, at=NOW)
    ours = decide(delta(rep=rep, reg=registration(), server_started=START + 1), attempt(), NOW)
    p = ours.progress
    assert p is not None and (p.state, p.retries_left) == (S.PENDING, RETRIES)
    assert p.next_attempt_at == NOW + DEFAULT_CONFIG.restart_retry_delay
    assert "cut by our restart" in p.message and "no retry spent" in p.message
    # the same result for an attempt begun by this server is the device's (or image's),
    # or for a 4 the link's: offered again within the attempt (engine.pulling)
    theirs = decide(delta(rep=rep, reg=registration(), server_started=START - 1), attempt(),
                    NOW)
    expected = {R.INVALID_URI: (S.UPDATE_FAILED, RETRIES),
                R.CONNECTION_LOST: (S.DOWNLOADING, RETRIES)}[code]
    assert theirs.progress is not None
    assert (theirs.progress.state, theirs.progress.retries_left) == expected


def test_a_phase_begun_before_our_restart_gets_its_budget_again_from_the_start() -> None:
    # down for 600 s across the download's deadline (START + 500)
    restarted_at = START + 600
    d = delta(rep=report(fw=F.DOWNLOADING, at=restarted_at), reg=registration(),
              observing=True, server_started=restarted_at)
    result = decide(d, attempt(), restarted_at + 1)
    assert result.progress is not None and result.progress.state is S.DOWNLOADING
    budget = DEADLINE - START
    assert result.actions == (Wait("waiting for the device's next report",
                                   min(restarted_at + budget,
                                       restarted_at + 4 * DEFAULT_CONFIG.poll_interval)),)


def test_after_our_restart_an_execute_that_never_arrived_is_sent_again() -> None:
    """Killed between persisting executed_at and sending Execute: the device still holds
    the download in state 2, so it never got it; it is asked at once, then executed."""
    restarted_at = START + 30
    before = executed(executes=1, updated_at=START)
    held = report(fw=F.DOWNLOADED, at=START - 1)  # read before the Execute
    first = decide(delta(rep=held, reg=registration(), server_started=restarted_at),
                   before, restarted_at + 0.5)
    assert first.actions == (Probe(),)
    assert first.progress is not None
    answer = report(fw=F.DOWNLOADED, at=restarted_at + 0.6)
    again = decide(delta(rep=answer, reg=registration(), server_started=restarted_at),
                   first.progress, restarted_at + 0.7)
    assert again.actions == (Execute(NEW.image_id),) and again.durable
    assert again.progress is not None and again.progress.retries_left == RETRIES
    assert "device restarted" not in again.progress.message


def test_a_device_that_registered_again_after_our_restart_is_read_not_called_restarted() -> None:
    reg = registration(at=NOW)  # its registration was ours to lose, not its reboot
    result = decide(delta(rep=report(at=START), reg=reg, server_started=NOW - 1),
                    executed(), NOW + 1)
    assert result.actions == (Verify(NEW.image_id, NEW.version),)
    assert result.progress is not None and "restarted" not in result.progress.message
    read = report(fw=F.DOWNLOADED, at=NOW + 2)  # it still holds the download
    decided = decide(delta(rep=read, reg=reg), result.progress, NOW + 3)
    assert decided.actions == (Execute(NEW.image_id),)


def test_every_update_state_has_a_phase() -> None:
    assert set(PHASE) == set(S)


# -- after the server delivered the package (Delta.delivered_at) --------------------------

DELIVERED = NOW + 10
CHECKING = ReadState("package delivered; asking whether the device holds it")


def _after_delivery(reported: float, delivered: float = DELIVERED) -> Delta:
    rep = report(fw=F.DOWNLOADING, at=reported)
    return delta(rep=rep, reg=registration(), observing=True, delivered_at=delivered)


def test_a_delivered_package_is_asked_about_after_1_s_not_at_the_observed_poll() -> None:
    """The Downloaded notification did not come (lost): ask 1 s after the delivery, where
    an observed download is otherwise read only 4 poll intervals (120 s) after its
    last report."""
    early = decide(_after_delivery(NOW), attempt(), DELIVERED + 0.5)
    assert early.actions == (Wait("waiting for the device's next report", DELIVERED + 1),)
    assert decide(_after_delivery(NOW), attempt(), DELIVERED + 1).actions == (CHECKING,)
    # Without a delivery, the same device waits for the observed poll.
    rep = report(fw=F.DOWNLOADING, at=NOW)
    plain = decide(delta(rep=rep, reg=registration(), observing=True), attempt(),
                   DELIVERED + 1)
    assert plain.actions == (
        Wait("waiting for the device's next report", NOW + 4 * DEFAULT_CONFIG.poll_interval),)


def test_the_checks_after_a_delivery_back_off_and_end() -> None:
    """A device that keeps saying Downloading (verifying) is asked at 1, 3, 7, 15, 31 and
    61 s after the delivery (gaps doubling up to the poll interval), then only at the
    observed poll again: at most six extra reads, the phase's deadline still holds."""
    checks, reported = [], NOW
    for _ in range(10):
        waited = decide(_after_delivery(reported), attempt(), reported + 0.01)
        (action,) = waited.actions
        assert isinstance(action, Wait) and action.until is not None
        if action.until == reported + 4 * DEFAULT_CONFIG.poll_interval:
            break
        assert decide(_after_delivery(reported), attempt(), action.until).actions == (CHECKING,)
        checks.append(round(action.until - DELIVERED, 6))
        reported = action.until + 0.01  # the check's answer: still Downloading
    assert checks == [1, 3, 7, 15, 31, 61]


def test_a_delivery_of_an_earlier_attempt_asks_nothing() -> None:
    stale = decide(_after_delivery(NOW, delivered=START - 1), attempt(), NOW + 1)
    assert stale.actions == (
        Wait("waiting for the device's next report", NOW + 4 * DEFAULT_CONFIG.poll_interval),)
