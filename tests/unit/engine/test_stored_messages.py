"""Stored progress messages carry no relative time ("retry in 30s" is stale once read
back): the backoff's end lives in `next_attempt_at` and is shown as an absolute UTC time
(issue 9 item 5)."""

from __future__ import annotations

import re

import pytest
from builders import NEW, T0, registration, report
from builders.engine import delta

from reconciler.engine import DEFAULT_CONFIG, decide
from reconciler.engine.conditions import device_conditions
from reconciler.model.lwm2m import FirmwareState as F
from reconciler.model.lwm2m import UpdateResult as R
from reconciler.model.observed import DeviceProgress, with_next_attempt
from reconciler.model.status import ConditionType
from reconciler.model.status import UpdateState as S

START = T0 + 10
DEADLINE = START + 500
RELATIVE = re.compile(r"\bin \d|\d+(\.\d+)?s\b")  # "in 30s", "60s"


def attempt(**changes: object) -> DeviceProgress:
    return DeviceProgress("d1", NEW.image_id, S.DOWNLOADING, "downloading 2.0", attempts=1,
                          retries_left=DEFAULT_CONFIG.max_retries, phase_started_at=START,
                          deadline=DEADLINE, updated_at=START).evolve(**changes)


@pytest.mark.parametrize("case", ["failed", "timed_out", "cut_by_our_restart"])
def test_a_scheduled_retry_stores_its_instant_not_a_delay_in_the_message(case: str) -> None:
    rep = report(fw=F.DOWNLOADING if case == "timed_out" else F.IDLE,
                 result=None if case == "timed_out" else R.CONNECTION_LOST, at=START + 5)
    started = START + 1 if case == "cut_by_our_restart" else START - 1
    now = DEADLINE if case == "timed_out" else START + 5
    # a 4 fails the attempt once its offers again are spent (engine.pulling)
    spent = attempt(resumes=DEFAULT_CONFIG.max_push_resumes)
    result = decide(delta(rep=rep, reg=registration(), observing=True,
                          server_started=started), spent, now)
    p = result.progress
    assert p is not None and p.next_attempt_at is not None and p.next_attempt_at > now
    assert p.state in (S.PENDING, S.TIMED_OUT)
    assert RELATIVE.search(p.message) is None, p.message
    assert result.events and all(RELATIVE.search(e.message) is None for e in result.events)
    # shown with the absolute instant, and the conditions say the same
    at = p.next_attempt_at
    shown = with_next_attempt(p.message, at)
    assert shown == p.shown_message and shown.startswith(p.message)
    assert re.search(r"\(next attempt at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)$", shown)
    reconciling = next(c for c in device_conditions(p, "r1", now)
                       if c.type is ConditionType.RECONCILING)
    assert reconciling.message == shown


def test_the_next_attempt_is_shown_in_utc_to_the_second() -> None:
    assert with_next_attempt("retry scheduled", 1795984265.9) == (
        "retry scheduled (next attempt at 2026-11-29T20:31:05Z)")
    assert with_next_attempt("downloading", None) == "downloading"
