"""The per-peer RTO estimator (CoCoA, reconciler/lwm2m/rto.py): its rules one by one, and
properties over any sequence of samples and idle times."""

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
    backoff_factor,
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


def test_the_backoff_factor_depends_on_the_rto_the_exchange_started_with() -> None:
    assert backoff_factor(0.5) == 3.0
    assert backoff_factor(2.0) == 2.0
    assert backoff_factor(3.5) == 1.5
    assert next_timeout(40.0, 0.5) == MAX_TIMEOUT


def test_at_the_floor_a_silent_peer_gets_rfc_7252s_patience() -> None:
    """0.5 + 1.5 + 4.5 + 13.5 + 40.5 = 60.5 s (x1-1.5): RFC 7252's 62-93 s."""
    timeouts = [MIN_RTO]
    for _ in range(MAX_RETRANSMIT):
        timeouts.append(next_timeout(timeouts[-1], MIN_RTO))
    assert sum(timeouts) == pytest.approx(60.5)
    assert 1.5 * sum(timeouts) < 93.0


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
    timeouts = [initial]
    for _ in range(MAX_RETRANSMIT):
        timeouts.append(next_timeout(timeouts[-1], initial))
    for before, after in itertools.pairwise(timeouts):
        assert after > before or after == MAX_TIMEOUT
    assert all(MIN_RTO <= t <= MAX_TIMEOUT for t in timeouts)


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
