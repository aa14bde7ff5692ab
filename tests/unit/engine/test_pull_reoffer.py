"""decide() for a pull download the device lost to the link (Update Result 4): offered
again within seconds in the same attempt, not a retry spent and 30 s of backoff; bounded
per attempt and by the deadline; a push, our restart and other results unchanged."""

from __future__ import annotations

from builders import NEW, T0, registration, report
from builders.engine import delta

from reconciler.engine import DEFAULT_CONFIG, Wait, WriteUri, decide
from reconciler.engine.actions import Action
from reconciler.model.lwm2m import DeliveryMethod, FirmwareState, UpdateResult
from reconciler.model.observed import DeviceProgress, DeviceReport
from reconciler.model.status import UpdateState as S

OFFERED = T0 + 10  # the attempt's URI went out at this instant
DEADLINE = OFFERED + DEFAULT_CONFIG.download_deadline(NEW)
RETRIES = DEFAULT_CONFIG.max_retries
LOST = "the device lost the connection during the download (Update Result 4)"


def downloading(**changes: object) -> DeviceProgress:
    base = DeviceProgress("d1", NEW.image_id, S.DOWNLOADING, "downloading 2.0", attempts=1,
                          retries_left=RETRIES, phase_started_at=OFFERED, deadline=DEADLINE,
                          updated_at=OFFERED)
    return base.evolve(**changes)


def lost(at: float, delivery: DeliveryMethod = DeliveryMethod.PULL_ONLY) -> DeviceReport:
    return report(fw=FirmwareState.IDLE, result=UpdateResult.CONNECTION_LOST, at=at,
                  delivery=delivery)


def decide_at(now: float, record: DeviceProgress, rep: DeviceReport, **flags: object
              ) -> tuple[tuple[Action, ...], DeviceProgress]:
    flags.setdefault("server_started", T0)
    result = decide(delta(rep=rep, reg=registration(), observing=True, **flags), record, now)
    assert result.progress is not None
    return result.actions, result.progress


def test_a_lost_download_is_offered_again_a_second_later_without_spending_a_retry() -> None:
    said = lost(OFFERED + 40)
    actions, record = decide_at(OFFERED + 40, downloading(), said)
    assert actions == (Wait(f"{LOST}; offering it again", OFFERED + 41),)
    assert record == downloading()  # nothing spent while it waits
    actions, record = decide_at(OFFERED + 41, record, said)
    assert actions == (WriteUri(NEW.image_id, 1),)  # the same attempt: the same offer
    assert (record.state, record.attempts, record.retries_left) == (S.INITIALIZING, 1, RETRIES)
    assert (record.resumes, record.phase_started_at, record.deadline) == (
        1, OFFERED + 41, DEADLINE)
    assert record.next_attempt_at is None
    assert record.message == (f"attempt 1: {LOST}; offering it again (interruption 1 of at "
                              f"most 6, no retry spent)")
    # the 4 it said before this offer is not read as the new one's end
    actions, again = decide_at(OFFERED + 42, record, said)
    assert not any(isinstance(a, WriteUri) for a in actions) and again.resumes == 1
    # what is not the link's loss in a pull is unchanged: another result, a push (its
    # stops are the LwM2M layer's), a 4 from a download our restart cut
    oom = report(fw=FirmwareState.IDLE, result=UpdateResult.OUT_OF_RAM, at=OFFERED + 40)
    _, record = decide_at(OFFERED + 40, downloading(), oom)
    assert (record.state, record.retries_left) == (S.PENDING, RETRIES - 1)
    pushed = downloading(pushed_at=OFFERED)
    _, record = decide_at(OFFERED + 40, pushed, lost(OFFERED + 40, DeliveryMethod.PUSH_ONLY))
    assert (record.state, record.retries_left) == (S.PENDING, RETRIES - 1)
    _, record = decide_at(OFFERED + 40, downloading(), lost(OFFERED + 40),
                          server_started=OFFERED + 20)
    assert (record.state, record.retries_left, record.resumes) == (S.PENDING, RETRIES, 0)
    assert "cut by our restart" in record.message


def test_the_wait_doubles_with_each_loss_and_one_more_or_the_deadline_fails_it() -> None:
    waits = []
    for resumes in range(DEFAULT_CONFIG.max_push_resumes):
        actions, _ = decide_at(OFFERED + 30, downloading(resumes=resumes), lost(OFFERED + 30))
        assert isinstance(actions[0], Wait)
        waits.append(actions[0].until)
    assert waits == [OFFERED + 30 + d for d in (1, 2, 4, 8, 16)]
    spent = downloading(resumes=DEFAULT_CONFIG.max_push_resumes)
    actions, record = decide_at(OFFERED + 30, spent, lost(OFFERED + 30))
    assert (record.state, record.retries_left) == (S.PENDING, RETRIES - 1)
    assert record.next_attempt_at == OFFERED + 30 + DEFAULT_CONFIG.backoff(1)
    assert "connection lost during the download (Update Result 4); retry scheduled" in (
        record.message)
    # nor an offer again that would fall after the deadline
    _, record = decide_at(DEADLINE - 0.5, downloading(), lost(DEADLINE - 0.5))
    assert record.state is S.PENDING and record.retries_left == RETRIES - 1


def test_a_device_asleep_when_the_offer_is_due_is_waited_for() -> None:
    actions, record = decide_at(OFFERED + 45, downloading(), lost(OFFERED + 40), awake=False)
    assert actions == (Wait(f"{LOST}; offering it again when the device speaks", DEADLINE),)
    assert record.resumes == 0

