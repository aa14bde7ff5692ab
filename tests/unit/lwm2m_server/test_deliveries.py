"""`Deliveries` (reconciler/lwm2m/deliveries.py): the latest delivery per endpoint,
subscribers told at most once per MIN_GAP per endpoint, forgotten on demand."""

from __future__ import annotations

import logging

import pytest

from reconciler.lwm2m.deliveries import MIN_GAP, Deliveries


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_subscribers_hear_of_an_endpoint_at_most_once_per_gap() -> None:
    clock, told = Clock(), []
    deliveries = Deliveries(clock)
    deliveries.subscribe(told.append)
    deliveries.delivered("a")
    clock.now += MIN_GAP / 2
    deliveries.delivered("a")  # the last block asked for again
    deliveries.delivered("b")
    assert told == ["a", "b"]
    assert deliveries.at("a") == clock.now  # the time is the latest all the same
    clock.now += MIN_GAP
    deliveries.delivered("a")
    assert told == ["a", "b", "a"]


def test_forgotten_endpoints_leave_nothing_and_a_failing_subscriber_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    deliveries = Deliveries(Clock())

    def broken(endpoint: str) -> None:
        raise RuntimeError(endpoint)

    deliveries.subscribe(broken)
    with caplog.at_level(logging.ERROR, logger="reconciler.lwm2m.deliveries"):
        deliveries.delivered("a")
    assert "delivery subscriber failed on a" in caplog.text
    deliveries.forget("a")
    assert deliveries.at("a") is None and len(deliveries) == 0
