"""The per-peer RTO estimator (CoCoA, reconciler/lwm2m/rto.py): its rules one by one, and
properties over any sequence of samples and idle times; the backoff on top of it
(RFC 7252's doubling): its timer sequences, against RFC 7252's fixed timers."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.lwm2m.rto import (
    INITIAL_RTO,
    MAX_RETRANSMIT,
    MAX_RTO,
    MAX_TIMEOUT,
    MIN_RTO,
    PeerRto,
    RtoTable,
    aged,
    next_timeout,
    sampled,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_peer_never_heard_from_gets_rfc_7252s_two_seconds() -> None:
    assert RtoTable().rto(("192.0.2.1", 5683)) == INITIAL_RTO == 2.0


def test_a_first_strong_sample_moves_the_rto_halfway_to_three_rtts() -> None:
    # RFC 6298: SRTT = R, RTTVAR = R/2, strong RTO = R + 4 R/2 = 3 R; CoCoA: half of it
    peer = sampled(PeerRto(), 1.0, 0, now=5.0)
    assert peer.rto == pytest.approx(0.5 * 3.0 + 0.5 * 2.0)
    assert peer.strong is not None and peer.weak is None and peer.updated == 5.0


def test_a_weak_sample_counts_a_quarter_with_k_1() -> None:
    peer = sampled(PeerRto(), 2.0, 1, now=5.0)
    assert peer.rto == pytest.approx(0.25 * (2.0 + 1.0) + 0.75 * 2.0)
    assert peer.weak is not None and peer.strong is None


def test_answers_after_three_or_more_retransmissions_teach_nothing() -> None:
    # Karn: which transmission the answer belongs to is unknown, and CoCoA stops at 2
    peer = PeerRto()
    assert sampled(peer, 0.01, 3, now=5.0) is peer
    assert sampled(peer, 0.01, MAX_RETRANSMIT, now=5.0) is peer


def test_a_fast_link_ends_at_the_floor_not_at_its_round_trip_time() -> None:
    table = RtoTable(clock=Clock())
    for _ in range(20):
        table.answered("peer", 0.001, 0)
    assert table.rto("peer") == MIN_RTO


def timeouts(first: float) -> list[float]:
    """An unanswered exchange's timeouts: the first copy's and one per retransmission."""
    sequence = [first]
    for _ in range(MAX_RETRANSMIT):
        sequence.append(next_timeout(sequence[-1]))
    return sequence


def test_every_retransmission_waits_twice_as_long_as_the_one_before_it() -> None:
    # RFC 7252 4.2 on the estimated RTO, whatever it is (CoCoA's x3 below 1 s and x1.5
    # above 3 s gave 0.5, 1.5, 4.5, 13.5, 40.5 and 3.5, 5.25, 7.9, ...)
    assert timeouts(MIN_RTO) == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert timeouts(INITIAL_RTO) == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert timeouts(3.5) == [3.5, 7.0, 14.0, 28.0, 56.0]
    assert timeouts(MAX_RTO) == [32.0, MAX_TIMEOUT, MAX_TIMEOUT, MAX_TIMEOUT, MAX_TIMEOUT]


def test_at_the_floor_an_exchange_lost_three_or_four_times_costs_seconds() -> None:
    """The wait before the copy that gets through: 7 RTOs after three losses in a row and
    15 after four (CoCoA's x3: 13 and 40, 6.5 and 20 s, the tail of a lossy rollout)."""
    waits = timeouts(MIN_RTO)
    assert sum(waits[:3]) == pytest.approx(3.5)
    assert sum(waits[:4]) == pytest.approx(7.5)
    assert 1.5 * sum(waits[:4]) < 12.0  # the longest dithering of the first timeout


def test_at_the_floor_a_silent_peer_is_given_up_on_after_15_5_to_23_3_s() -> None:
    """0.5 + 1 + 2 + 4 + 8 = 15.5 s (x1-1.5): the documented patience on a fast link,
    about the engine's 20 s request timeout; from the 2 s default RFC 7252's 62-93 s."""
    assert sum(timeouts(MIN_RTO)) == pytest.approx(15.5)
    assert 1.5 * sum(timeouts(MIN_RTO)) == pytest.approx(23.25)
    assert sum(timeouts(INITIAL_RTO)) == pytest.approx(62.0)


@given(st.floats(INITIAL_RTO, MAX_RTO), st.floats(1.0, 1.5))
def test_from_two_seconds_up_no_copy_leaves_sooner_than_under_rfc_7252s_timers(
        rto: float, dither: float) -> None:
    """Congestion safety where the round trip is long (the estimate grows with it): the
    k-th retransmission leaves no sooner than RFC 7252's fixed timers (ACK_TIMEOUT 2 s,
    doubling) would send it with the same dithering. CoCoA's x1.5 above 3 s broke this
    (from 3.1 s: its fourth retransmission 25.2 s after the first copy, RFC 7252's 30)."""
    ours = list(itertools.accumulate(timeouts(rto * dither)))
    rfc_7252 = list(itertools.accumulate(2.0 * dither * 2**k for k in range(MAX_RETRANSMIT + 1)))
    assert all(a >= b for a, b in zip(ours, rfc_7252, strict=True))


@given(st.floats(MIN_RTO, MAX_RTO), st.floats(1.0, 1.5))
def test_a_silent_peer_is_always_given_up_on_within_the_documented_bounds(
        rto: float, dither: float) -> None:
    """RTO x 31 (x1-1.5), never under the floor's 15.5 s nor over 288 s (48 + 4 x 60)."""
    assert 1.5 * MAX_RTO + MAX_RETRANSMIT * MAX_TIMEOUT == 288.0
    waited = sum(timeouts(rto * dither))
    assert 31 * MIN_RTO <= waited <= 288.0
    if 16 * rto * dither <= MAX_TIMEOUT:  # no timeout capped: exactly 31 first timeouts
        assert waited == pytest.approx(31 * rto * dither)
    else:
        assert waited < 31 * rto * dither


def test_a_small_rto_left_alone_doubles_and_a_large_one_returns_towards_two_seconds() -> None:
    small = PeerRto(rto=0.5, updated=0.0)
    assert aged(small, now=7.9) is small  # not yet 16 RTOs
    assert aged(small, now=8.1).rto == 1.0
    large = PeerRto(rto=20.0, updated=0.0)
    assert aged(large, now=79.0) is large  # not yet 4 RTOs
    assert aged(large, now=81.0).rto == pytest.approx(11.0)  # 1 s + RTO / 2
    assert 2.0 <= aged(large, now=10_000.0).rto <= 3.0


def test_the_table_forgets_the_least_recently_used_peer_beyond_its_capacity() -> None:
    table = RtoTable(capacity=2, clock=Clock())
    for peer in ("a", "b"):
        table.answered(peer, 0.01, 0)
    table.rto("a")  # used: "b" is now the oldest
    table.answered("c", 0.01, 0)
    assert len(table) == 2 and table.peer("b") is None
    assert table.peer("a") is not None and table.peer("c") is not None
    assert table.rto("b") == INITIAL_RTO  # forgotten is back at the safe default


samples = st.lists(st.tuples(st.floats(0.0, 300.0), st.integers(0, MAX_RETRANSMIT),
                             st.floats(0.0, 1000.0)), max_size=40)


@given(samples)
def test_the_rto_always_stays_within_its_bounds(events: list[tuple[float, int, float]]
                                                 ) -> None:
    clock = Clock()
    table = RtoTable(clock=clock)
    for rtt, retransmissions, idle in events:
        clock.now += idle
        assert MIN_RTO <= table.rto("peer") <= MAX_RTO
        table.answered("peer", rtt, retransmissions)
        known = table.peer("peer")
        assert known is not None and MIN_RTO <= known.rto <= MAX_RTO


@given(st.floats(MIN_RTO, MAX_RTO))
def test_backoff_grows_every_time_until_its_cap(initial: float) -> None:
    sequence = timeouts(initial)
    for before, after in itertools.pairwise(sequence):
        assert after > before or after == MAX_TIMEOUT
    assert all(MIN_RTO <= t <= MAX_TIMEOUT for t in sequence)


@given(st.floats(0.0, 100.0), st.integers(0, 2))
def test_one_sample_moves_the_rto_towards_what_it_measured(rtt: float, retransmissions: int
                                                           ) -> None:
    after = sampled(PeerRto(), rtt, retransmissions, now=1.0).rto
    k = 4.0 if retransmissions == 0 else 1.0
    target = max(min(rtt + k * rtt / 2, MAX_RTO), MIN_RTO)
    assert min(target, INITIAL_RTO) - 1e-9 <= after <= max(target, INITIAL_RTO) + 1e-9


def test_a_peer_that_moves_keeps_what_was_learnt_of_its_link() -> None:
    clock = Clock()
    table = RtoTable(clock=clock)
    for _ in range(6):
        table.answered("old", 0.01, 0)
    learnt = table.rto("old")
    assert learnt < INITIAL_RTO
    table.moved("old", "new")
    assert table.rto("new") == learnt
    table.moved("unknown", "newer")  # nothing known: the new address starts at 2 s
    assert table.rto("newer") == INITIAL_RTO


def test_moving_peers_keeps_the_table_bounded() -> None:
    table = RtoTable(capacity=2, clock=Clock())
    table.answered("a", 0.01, 0)
    table.answered("b", 0.01, 0)
    table.moved("a", "c")
    assert len(table) == 2 and table.peer("a") is None  # least recently used went
    assert table.peer("c") is not None
