"""decide() for a push cut short (issue 8): resumed within seconds, not at the download
deadline; bounded per attempt; never a retry; after our restart, pushed again at once."""

from __future__ import annotations

from builders import NEW, T0, registration, report
from builders.engine import delta

from reconciler.engine import DEFAULT_CONFIG, PushPackage, ReadState, Wait, decide
from reconciler.engine.actions import Action
from reconciler.model.lwm2m import DeliveryMethod, FirmwareState
from reconciler.model.observed import DeviceProgress, PushStop
from reconciler.model.status import UpdateState as S

PUSHED = T0 + 10  # the attempt began with a push at this instant
DEADLINE = PUSHED + DEFAULT_CONFIG.download_deadline(NEW)
DOWNLOADING = report(fw=FirmwareState.DOWNLOADING, delivery=DeliveryMethod.PUSH_ONLY,
                     at=PUSHED + 2)


def pushing(**changes: object) -> DeviceProgress:
    base = DeviceProgress("d1", NEW.image_id, S.DOWNLOADING, "downloading 2.0", attempts=1,
                          retries_left=3, phase_started_at=PUSHED, deadline=DEADLINE,
                          updated_at=PUSHED, pushed_at=PUSHED)
    return base.evolve(**changes)


def stop(at: float, block: int = 33) -> PushStop:
    return PushStop(at, block, 64, "/5/0/0: the device stopped answering during the push")


def decide_at(now: float, record: DeviceProgress, push_stop: PushStop | None = None,
              rep: object = DOWNLOADING,
              **flags: object) -> tuple[tuple[Action, ...], DeviceProgress]:
    flags.setdefault("server_started", T0)
    result = decide(delta(rep=rep, reg=registration(), observing=True,
                          push_stop=push_stop, **flags), record, now)
    assert result.progress is not None
    return result.actions, result.progress


def test_a_stopped_push_waits_a_second_then_resumes_without_spending_a_retry() -> None:
    halted = stop(PUSHED + 20)
    actions, record = decide_at(PUSHED + 20.1, pushing(), halted)
    assert actions == (Wait("the push stopped at block 33 of 64; resuming it", PUSHED + 21),)
    actions, record = decide_at(PUSHED + 21, record, halted)
    assert actions == (PushPackage(NEW.image_id, 1, DEADLINE - (PUSHED + 21), resume=True,
                                   digest=NEW.sha256),)
    assert (record.state, record.resumes, record.pushed_at) == (S.DOWNLOADING, 1, PUSHED + 21)
    assert record.retries_left == 3 and record.attempts == 1
    assert record.message == ("attempt 1: resuming the push at block 33 of 64 "
                              "(interruption 1 of at most 6)")


def test_a_device_asleep_when_the_resumption_is_due_is_waited_for_not_pushed() -> None:
    # queue mode (or no session yet): its next Update is the trigger, the deadline the bound
    actions, record = decide_at(PUSHED + 25, pushing(), stop(PUSHED + 20), awake=False)
    assert actions == (Wait("the push stopped at block 33 of 64; resuming it when the "
                            "device speaks", DEADLINE),)
    assert record.resumes == 0 and record.pushed_at == PUSHED
    actions, record = decide_at(PUSHED + 30, pushing(), stop(PUSHED + 20))  # it spoke
    assert actions == (PushPackage(NEW.image_id, 1, DEADLINE - (PUSHED + 30), resume=True,
                                   digest=NEW.sha256),)
    assert (record.resumes, record.retries_left) == (1, 3)


def test_the_delay_doubles_with_each_resumption_and_stays_inside_the_deadline() -> None:
    waits = []
    for resumes in range(DEFAULT_CONFIG.max_push_resumes):
        actions, _ = decide_at(PUSHED + 30, pushing(resumes=resumes), stop(PUSHED + 30))
        assert isinstance(actions[0], Wait)
        waits.append(actions[0].until)
    assert waits == [PUSHED + 30 + d for d in (1, 2, 4, 8, 16)]
    late = stop(DEADLINE - 0.5)
    actions, _ = decide_at(DEADLINE - 0.4, pushing(resumes=4), late)
    assert actions == (Wait("the push stopped at block 33 of 64; resuming it", DEADLINE),)


def test_the_stop_after_the_last_resumption_fails_the_attempt_with_one_retry() -> None:
    capped = pushing(resumes=DEFAULT_CONFIG.max_push_resumes)
    actions, record = decide_at(PUSHED + 100, capped, stop(PUSHED + 99))
    assert record.state is S.PENDING and record.retries_left == 2
    assert record.message == ("attempt 1 failed: the push stopped at block 33 of 64 after 6 "
                              "interruptions; retry scheduled")
    assert record.next_attempt_at == PUSHED + 100 + DEFAULT_CONFIG.backoff(1)
    assert actions == (Wait(record.message, record.next_attempt_at),)
    last = decide_at(PUSHED + 100, capped.evolve(retries_left=0), stop(PUSHED + 99))[1]
    assert last.state is S.UPDATE_FAILED
    assert last.message.endswith("no retries left after 1 attempts")


def test_a_stop_of_an_earlier_push_a_running_push_or_a_delivery_is_no_resumption() -> None:
    record = pushing(pushed_at=PUSHED + 50)  # resumed at +50: the stop at +40 was before
    assert not _pushes(decide_at(PUSHED + 60, record, stop(PUSHED + 40))[0])
    running = decide_at(PUSHED + 60, pushing(), stop(PUSHED + 40), pushing=True)[0]
    assert running == (Wait("pushing the package", DEADLINE),)  # its end is a trigger
    delivered = decide_at(PUSHED + 60, pushing(), None, delivered_at=PUSHED + 41)[0]
    assert delivered == (ReadState("package delivered; asking whether the device holds it"),)


def test_after_our_restart_a_push_with_no_stop_recorded_is_pushed_again_at_once() -> None:
    restarted = PUSHED + 100  # our server started after the push went out
    # the last report is from before the restart: what the device holds now decides
    actions, _ = decide_at(restarted + 1, pushing(resumes=2), None, server_started=restarted)
    assert actions == (ReadState("our restart cut the push; reading the firmware state "
                                 "before pushing again"),)
    fresh = report(fw=FirmwareState.DOWNLOADING, delivery=DeliveryMethod.PUSH_ONLY,
                   at=restarted + 1)
    actions, record = decide_at(restarted + 1, pushing(resumes=2), None, fresh,
                                server_started=restarted)
    assert actions == (PushPackage(NEW.image_id, 1, DEADLINE + 100 - (restarted + 1),
                                   resume=True, digest=NEW.sha256),)
    assert (record.resumes, record.pushed_at, record.retries_left) == (2, restarted + 1, 3)
    assert "cut by our restart" in record.message
    # pushed again in this process: no second push for the same restart
    assert not _pushes(decide_at(restarted + 2, record, None, fresh,
                                 server_started=restarted)[0])


def test_after_our_restart_a_device_that_took_the_last_block_is_not_pushed_again() -> None:
    """The kill fell after the device took the last block and before we heard it: the
    device is Downloaded and refuses another push (4.05, which would spend a retry)."""
    restarted = PUSHED + 100
    done = report(fw=FirmwareState.DOWNLOADED, delivery=DeliveryMethod.PUSH_ONLY,
                  at=restarted + 1)
    actions, record = decide_at(restarted + 1, pushing(), None, done,
                                server_started=restarted)
    assert not _pushes(actions) and record.retries_left == 3


def test_a_record_from_before_the_resumptions_counts_its_push_from_the_phase_start() -> None:
    old = pushing(pushed_at=None)  # written by an older release: no pushed_at column
    actions, _ = decide_at(PUSHED + 31, old, stop(PUSHED + 30))
    assert _pushes(actions)


def test_a_pull_download_is_never_pushed() -> None:
    pull = report(fw=FirmwareState.DOWNLOADING, at=PUSHED + 2)
    result = decide(delta(rep=pull, reg=registration(), observing=True,
                          push_stop=stop(PUSHED + 20), server_started=PUSHED + 50),
                    pushing(), PUSHED + 60)
    assert not _pushes(result.actions)


def _pushes(actions: tuple[Action, ...]) -> bool:
    return any(isinstance(a, PushPackage) for a in actions)


def test_a_push_the_device_refused_fails_the_attempt_at_once() -> None:
    refused = PushStop(PUSHED + 5, 0, 64, "/5/0/0: device answered 4.13: too large", True)
    _, record = decide_at(PUSHED + 6, pushing(), refused)
    assert record.state is S.PENDING and record.retries_left == 2 and record.resumes == 0
    assert record.message == ("attempt 1 failed: the device refused the push at block 0 "
                              "of 64: /5/0/0: device answered 4.13: too large; retry "
                              "scheduled")
