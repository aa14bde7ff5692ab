"""decide() before an attempt runs: hands off, reading first, current devices, starting."""

from __future__ import annotations

from builders import NEW, T0, one_device, registration, report
from builders.engine import delta

from reconciler.engine import (
    DEFAULT_CONFIG,
    EFFECTS,
    CancelDownload,
    Gate,
    NoOp,
    Observe,
    PushPackage,
    ReadState,
    Wait,
    WriteUri,
    decide,
    retarget,
)
from reconciler.engine.machine import HOLDS
from reconciler.model.desired import Management
from reconciler.model.lwm2m import DeliveryMethod, FirmwareState
from reconciler.model.observed import DeviceProgress, DeviceReport
from reconciler.model.status import UpdateState as S

NOW = T0 + 10
DEADLINE = NOW + DEFAULT_CONFIG.download_deadline(NEW)


def pending(**changes: object) -> DeviceProgress:
    base = DeviceProgress("d1", NEW.image_id, S.PENDING, "update to 2.0 pending",
                          updated_at=T0)
    return base.evolve(**changes)


def test_disabled_collection_gets_no_action_and_no_progress_change() -> None:
    old = pending(state=S.DOWNLOADING)
    result = decide(delta(one_device(Management.DISABLED), report(), registration()), old, NOW)
    assert result.actions == (NoOp("firmware management disabled for the collection"),)
    assert result.progress is old and result.events == ()


def test_unregistered_device_gets_a_pending_record_and_waits() -> None:
    result = decide(delta(rep=report(), reg=None), None, NOW)
    assert result.actions == (Wait("device not registered; waiting for it to register"),)
    assert result.progress is not None and result.progress.state is S.PENDING
    assert [e.kind for e in result.events] == ["target"]


def test_a_report_older_than_the_registration_is_read_first() -> None:
    result = decide(delta(rep=report(at=T0 - 5), reg=registration(T0)), pending(), NOW)
    assert result.actions == (ReadState("device registered; reading its firmware state"),)


def test_a_device_on_its_target_is_current_and_never_touched() -> None:
    result = decide(delta(rep=report("2.0"), reg=registration()), None, NOW)
    assert result.actions == (NoOp("device runs its target"),)
    assert result.progress is not None and result.progress.state is S.CURRENT
    again = decide(delta(rep=report("2.0"), reg=registration()), result.progress, NOW + 99)
    assert again.progress is result.progress and again.events == ()


def test_pull_start_writes_the_uri_then_observes_and_records_the_attempt() -> None:
    result = decide(delta(rep=report(), reg=registration()), pending(), NOW)
    assert result.actions == (WriteUri(NEW.image_id, 1), Observe())
    p = result.progress
    assert p is not None
    assert (p.state, p.attempts, p.deadline) == (S.INITIALIZING, 1, DEADLINE)
    assert p.executed_at is None and p.phase_started_at == NOW


def test_push_only_device_gets_the_package_pushed() -> None:
    rep = report(delivery=DeliveryMethod.PUSH_ONLY)
    result = decide(delta(rep=rep, reg=registration(), observing=True), pending(), NOW)
    assert result.actions == (PushPackage(NEW.image_id, 1, DEADLINE - NOW, digest=NEW.sha256),)


def test_no_observe_when_one_runs_or_the_device_refuses_it() -> None:
    running = decide(delta(rep=report(), reg=registration(), observing=True), pending(), NOW)
    refused = decide(delta(rep=report(), reg=registration(), can_observe=False), pending(), NOW)
    assert running.actions == refused.actions == (WriteUri(NEW.image_id, 1),)


def test_a_leftover_download_is_reset_before_the_new_attempt() -> None:
    rep = report(fw=FirmwareState.DOWNLOADED)
    result = decide(delta(rep=rep, reg=registration()), pending(), NOW)
    assert result.actions == (CancelDownload("device holds another download; resetting it"),
                              ReadState("after reset"))


def test_a_device_that_ignores_the_reset_ends_failed_within_three_resets_saying_why() -> None:
    """The skeleton Object 5 of a common open-source client: state 1, writes ignored."""
    record: DeviceProgress | None = pending()
    rep, now, resets = report(fw=FirmwareState.DOWNLOADING), NOW, 0
    for _ in range(20):
        assert record is not None
        result = decide(delta(rep=rep, reg=registration()), record, now)
        record = result.progress
        assert record is not None
        resets += sum(isinstance(a, CancelDownload) for a in result.actions)
        if any(isinstance(a, ReadState) for a in result.actions):
            rep = report(fw=FirmwareState.DOWNLOADING, at=now)  # it answers: still 1
        elif record.state.terminal:
            break
        else:
            assert isinstance(result.actions[0], Wait) and result.actions[0].until is not None
            now = result.actions[0].until
    assert record is not None and (record.state, resets) == (S.UPDATE_FAILED, 3)
    assert record.message == ("/5/0/3 stayed 1 after the URI was cleared 3 times: "
                              "the device does not follow Object 5")
    assert now - NOW == 5 + 10 + 20  # each reset gets twice the time of the one before


def test_a_device_that_follows_the_reset_starts_its_attempt_at_once() -> None:
    busy = decide(delta(rep=report(fw=FirmwareState.DOWNLOADED), reg=registration()),
                  pending(), NOW)
    assert busy.progress is not None and busy.progress.resets == 1
    idle = decide(delta(rep=report(at=NOW), reg=registration()), busy.progress, NOW)
    assert isinstance(idle.actions[0], WriteUri)
    assert idle.progress is not None and idle.progress.resets == 0


def test_a_device_installing_firmware_we_never_executed_is_polled_then_ends_failed() -> None:
    installing = report(fw=FirmwareState.UPDATING)
    first = decide(delta(rep=installing, reg=registration()), pending(), NOW)
    held = first.progress
    limit = NOW + DEFAULT_CONFIG.update_timeout
    assert held is not None and (held.state, held.deadline) == (S.PENDING, limit)
    assert first.actions == (Wait(held.message, NOW + DEFAULT_CONFIG.poll_interval),)
    poll = decide(delta(rep=installing, reg=registration()), held, NOW + 31)
    assert poll.actions == (ReadState("polling the install"),)
    still = report(fw=FirmwareState.UPDATING, at=limit)
    last = decide(delta(rep=still, reg=registration()), held, limit)
    assert last.progress is not None and last.progress.state is S.UPDATE_FAILED
    assert last.progress.message == ("/5/0/3 stayed 3 for 900s though we sent no Execute: "
                                     "the device does not follow Object 5")
    done = decide(delta(rep=report(at=NOW + 40), reg=registration()), held, NOW + 41)
    assert isinstance(done.actions[0], WriteUri)  # it finished: our attempt starts


def test_an_unregistered_device_without_an_update_under_way_waits_for_a_trigger() -> None:
    held = pending(deadline=NOW - 1)  # a deadline left from waiting on another install
    result = decide(delta(rep=report()), held, NOW)
    assert result.actions == (Wait("device not registered; waiting for it to register"),)


def test_backoff_holds_the_next_attempt_until_its_time() -> None:
    record = pending(state=S.TIMED_OUT, next_attempt_at=NOW + 60)
    early = decide(delta(rep=report(), reg=registration()), record, NOW)
    assert early.actions == (Wait("backing off before the next attempt", NOW + 60),)
    late = decide(delta(rep=report(), reg=registration()), record, NOW + 60)
    assert late.progress is not None and late.progress.state is S.INITIALIZING


def test_a_closed_rollout_gate_holds_the_start_and_says_why() -> None:
    gate = Gate(False, "waiting for a slot: 2 of max 2 updating")
    result = decide(delta(rep=report(), reg=registration()), pending(), NOW, gate)
    assert result.actions == (Wait("waiting for a slot: 2 of max 2 updating"),)
    assert result.progress is not None and result.progress.message == gate.reason
    assert result.gated and not decide(delta(rep=report(), reg=registration()), pending(),
                                     NOW).gated


def test_a_sleeping_queue_mode_device_is_never_contacted() -> None:
    d = delta(rep=report(), reg=registration(queue=True), awake=False)
    result = decide(d, pending(), NOW)
    assert not any(isinstance(a, (*EFFECTS, ReadState)) for a in result.actions)
    assert result.actions == (Wait("queue mode: waiting for the device to speak"),)


def test_a_terminal_state_holds_until_the_target_changes() -> None:
    failed = pending(state=S.UPDATE_FAILED, message="integrity")
    held = decide(delta(rep=report(), reg=registration()), failed, NOW)
    assert held.actions == (NoOp(f"UpdateFailed {HOLDS}"),)
    moved = decide(delta(rep=report(), reg=registration()), failed.evolve(target_image_id="x"), NOW)
    assert moved.progress is not None and moved.progress.state is S.INITIALIZING
    assert moved.progress.retries_left == DEFAULT_CONFIG.max_retries


def test_retarget_only_acknowledges_a_new_target_and_never_acts() -> None:
    fresh = retarget(delta(rep=report(), reg=registration()), None, NOW)
    assert fresh.actions == () and fresh.progress is not None
    assert (fresh.progress.state, fresh.progress.target_image_id) == (S.PENDING, NEW.image_id)
    on_it = retarget(delta(rep=report("2.0"), reg=registration()), None, NOW)
    assert on_it.progress is not None and on_it.progress.state is S.CURRENT
    same = pending(state=S.DOWNLOADING)
    assert retarget(delta(rep=report(), reg=registration()), same, NOW).progress is same


# After an update that ended by /3/0/3 alone (`Verify` read /3/0 only), /5/0's state,
# result and delivery method are unknown: the report holds None for them.
def unknown_object_5(at: float = T0 + 1) -> DeviceReport:
    return report("1.0", at=at).with_values(fw_state=None, update_result=None,
                                            delivery_method=None)


def test_an_attempt_reads_an_unknown_object_5_by_its_observe_and_resets_it_if_busy() -> None:
    record = pending(updated_at=T0 + 5)  # the new target came after the last report
    result = decide(delta(rep=unknown_object_5(), reg=registration()), record, NOW)
    assert result.actions == (Observe(read=True),)
    assert result.progress == record  # nothing sent yet, nothing recorded
    # its first answer: still downloading something else, the fallback as before
    busy = report("1.0", FirmwareState.DOWNLOADING, at=NOW + 1)
    after = decide(delta(rep=busy, reg=registration(), observing=True), record, NOW + 1)
    assert isinstance(after.actions[0], CancelDownload)


def test_without_observe_an_unknown_object_5_is_read() -> None:
    result = decide(delta(rep=unknown_object_5(), reg=registration(), can_observe=False),
                    pending(updated_at=T0 + 5), NOW)
    assert [(type(a), a.firmware_only) for a in result.actions
            if isinstance(a, ReadState)] == [(ReadState, True)]
    assert len(result.actions) == 1


def test_object_5_is_asked_for_once_then_a_device_that_never_reports_it_starts() -> None:
    """The read is due only while the report is older than the record: answered
    without /5/0/3, the attempt starts (a pull: no delivery method reported)."""
    record = pending(updated_at=T0 + 5)
    first = decide(delta(rep=unknown_object_5(), reg=registration()), record, NOW)
    assert first.actions == (Observe(read=True),)
    answered = unknown_object_5(at=NOW + 1)
    then = decide(delta(rep=answered, reg=registration(), observing=True), record, NOW + 1)
    assert then.actions == (WriteUri(NEW.image_id, 1),)
