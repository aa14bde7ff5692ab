"""Retransmission timeouts for the server's own Confirmables, estimated per peer (CoCoA).

RFC 7252 §4.8.1 lets a sender adapt ACK_TIMEOUT to the link it knows. This module does it
the way CoCoA does, as specified in draft-ietf-core-cocoa-03 (Bormann, Betzler, Gomez,
Demirkol: "CoAP Simple Congestion Control/Advanced", §4.2) and shipped in Californium
(`congestioncontrol/Cocoa.java`, `RemoteEndpoint.java`):

- before any measurement a peer's RTO is RFC 7252's ACK_TIMEOUT, 2 s;
- two RFC 6298 estimators per peer (SRTT, RTTVAR; alpha 1/8, beta 1/4; a first sample R
  gives SRTT = R, RTTVAR = R/2): the *strong* one (RTO = SRTT + 4 RTTVAR) takes only
  exchanges answered without a retransmission, the only unambiguous samples (Karn); the
  *weak* one (RTO = SRTT + 1 RTTVAR) takes those answered after 1 or 2 retransmissions,
  timed from the first transmission; after 3 or more, nothing is learnt;
- the RTO used is the overall one, moved halfway towards a new strong RTO and a quarter
  of the way towards a new weak one;
- the backoff is not CoCoA's: see below;
- aging: an RTO below 1 s not updated for 16 RTOs doubles, one above 3 s not updated for
  4 RTOs moves halfway towards 2 s (RTO = 1 s + RTO / 2), repeatedly;
- the RTO never exceeds 32 s (Californium's bound) and a backed-off timeout never 60 s.

Two deliberate departures from CoCoA:

- A floor of `MIN_RTO` (0.5 s). The strong sample of a piggybacked answer includes the
  device's processing time, and on a fast link (loopback, LAN) an RTO of a few
  milliseconds would retransmit whenever a device, or our own event loop (its pauses are
  bounded at 100 ms), stalls briefly; a spurious retransmission costs the device work
  and, by Karn's rule, makes the next samples weak. 0.5 s is five times that bound and
  still a quarter of RFC 7252's 2 s, which is where the time of a lost request goes on
  such a link.
- RFC 7252 section 4.2's binary exponential backoff (`BACKOFF`, 2) on the estimated RTO,
  as RFC 6298 does for TCP, instead of CoCoA's variable factor (x3 when an exchange
  starts below 1 s, x1.5 above 3 s). At the floor, x3 made an exchange lost three times
  in a row cost 13 RTOs (6.5-9.8 s) and four times 40 (20-30 s): the tail of a lossy
  rollout. With 2 it is 7 and 15 RTOs (3.5-5.3 s, 7.5-11.3 s). What x3 bought was
  RFC 7252's patience for a silent peer; ours is RTO x 31 (the first copy and
  MAX_RETRANSMIT more, x1-1.5 dithering): 15.5-23.3 s at the floor (the engine's
  request timeout is 20 s anyway), RFC 7252's 62-93 s at 2 s, at most 288 s at
  `MAX_RTO`; then the engine backs off and tries again, bounded.
  Congestion safety: from an RTO of 2 s up (every peer not yet measured, and every link
  whose round trip makes the estimate grow there) each timeout is at least RFC 7252's
  with the same dithering, so no copy leaves sooner than under RFC 7252's fixed timers.
  CoCoA's x1.5 did not hold that: from 3.1 s its fourth retransmission left 25 s after
  the first copy, RFC 7252's 30 s. Below 2 s the timers are shorter only because the
  round trip was measured to be, and still double at every expiry.

The estimator functions are pure; `RtoTable` keeps one `PeerRto` per peer in an LRU
bounded to `capacity` peers (one forgotten is back at 2 s, which is always safe). Used by
`retransmit.py`, which applies it to aiocoap's message layer, and by `Lwm2mServer`, which
tells it when a device moves to a new address (`RtoTable.moved`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

INITIAL_RTO = 2.0     # RFC 7252 ACK_TIMEOUT: before anything is known of the peer
MIN_RTO = 0.5         # our floor (see the module docstring)
MAX_RTO = 32.0        # CoCoA / Californium: the overall RTO's bound
MAX_TIMEOUT = 60.0    # Californium's MAX_RTO: no backed-off timeout waits longer
MAX_RETRANSMIT = 4    # RFC 7252, unchanged: what ends every exchange
ALPHA, BETA = 0.125, 0.25                # RFC 6298
STRONG_K, WEAK_K = 4.0, 1.0              # CoCoA: K of each estimator
STRONG_WEIGHT, WEAK_WEIGHT = 0.5, 0.25   # CoCoA: its share in the overall RTO
WEAK_MAX_RETRANSMISSIONS = 2             # CoCoA: later answers teach nothing
SMALL_RTO, LARGE_RTO = 1.0, 3.0          # CoCoA: aging thresholds
BACKOFF = 2.0                            # RFC 7252 4.2 (see the module docstring)
DEFAULT_CAPACITY = 65_536                # peers remembered (~0.3 KB each)


@dataclass(frozen=True, slots=True)
class Estimator:
    """One RFC 6298 estimator: smoothed RTT and its variation, seconds."""

    srtt: float
    rttvar: float

    def rto(self, k: float) -> float:
        return self.srtt + k * self.rttvar


@dataclass(frozen=True, slots=True)
class PeerRto:
    """What is known of one peer: the overall RTO, when it last changed (clock seconds,
    for aging) and the two estimators (None until their first sample)."""

    rto: float = INITIAL_RTO
    updated: float = 0.0
    strong: Estimator | None = None
    weak: Estimator | None = None


def bounded(rto: float, floor: float = MIN_RTO) -> float:
    return min(max(rto, floor), MAX_RTO)


def estimate(previous: Estimator | None, rtt: float) -> Estimator:
    """RFC 6298 §2: the first sample initialises, later ones smooth."""
    if previous is None:
        return Estimator(rtt, rtt / 2)
    rttvar = (1 - BETA) * previous.rttvar + BETA * abs(previous.srtt - rtt)
    return Estimator((1 - ALPHA) * previous.srtt + ALPHA * rtt, rttvar)


def sampled(peer: PeerRto, rtt: float, retransmissions: int, now: float,
            floor: float = MIN_RTO) -> PeerRto:
    """The peer after an exchange answered `rtt` seconds after its first transmission,
    following `retransmissions` of them: strong with none, weak with 1-2, else as it was."""
    rtt = max(rtt, 0.0)
    if retransmissions == 0:
        strong = estimate(peer.strong, rtt)
        rto = STRONG_WEIGHT * strong.rto(STRONG_K) + (1 - STRONG_WEIGHT) * peer.rto
        return PeerRto(bounded(rto, floor), now, strong, peer.weak)
    if retransmissions <= WEAK_MAX_RETRANSMISSIONS:
        weak = estimate(peer.weak, rtt)
        rto = WEAK_WEIGHT * weak.rto(WEAK_K) + (1 - WEAK_WEIGHT) * peer.rto
        return PeerRto(bounded(rto, floor), now, peer.strong, weak)
    return peer


def aged(peer: PeerRto, now: float, floor: float = MIN_RTO) -> PeerRto:
    """CoCoA's aging: a small RTO left alone for 16 RTOs doubles, a large one left alone
    for 4 RTOs moves halfway back to 2 s, as often as the idle time covers (at most a
    handful of steps: each one moves the RTO out of its range or towards 2 s)."""
    rto, since = peer.rto, now - peer.updated
    while rto < SMALL_RTO and since > 16 * rto:
        since -= 16 * rto
        rto *= 2
    while rto > LARGE_RTO and since > 4 * rto:
        since -= 4 * rto
        rto = 1.0 + rto / 2
    if rto == peer.rto:
        return peer
    return PeerRto(bounded(rto, floor), now - since, peer.strong, peer.weak)


def next_timeout(previous: float) -> float:
    """The timeout after the next retransmission of an exchange: RFC 7252's doubling."""
    return min(previous * BACKOFF, MAX_TIMEOUT)


class RtoTable:
    """The RTO of each peer the server sends Confirmables to, bounded to `capacity` peers
    (least recently used forgotten first). Peers are any hashable address. `floor`: the
    lowest RTO (tests that run whole exchanges to their end lower it)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY,
                 clock: Callable[[], float] = time.monotonic, floor: float = MIN_RTO) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if not 0 < floor <= INITIAL_RTO:
            raise ValueError(f"floor must be in (0, {INITIAL_RTO}]")
        self._capacity = capacity
        self._floor = floor
        self._clock = clock
        self._peers: OrderedDict[Hashable, PeerRto] = OrderedDict()

    def __len__(self) -> int:
        return len(self._peers)

    def rto(self, peer: Hashable) -> float:
        """The RTO for a new exchange with `peer` (aged first)."""
        known = self._peers.get(peer)
        if known is None:
            return INITIAL_RTO
        current = aged(known, self._clock(), self._floor)
        if current is not known:
            self._peers[peer] = current
        self._peers.move_to_end(peer)
        return current.rto

    def answered(self, peer: Hashable, rtt: float, retransmissions: int) -> None:
        """An exchange with `peer` was answered `rtt` seconds after its first transmission."""
        now = self._clock()
        known = self._peers.pop(peer, None)
        self._peers[peer] = sampled(aged(known or PeerRto(updated=now), now, self._floor),
                                    rtt, retransmissions, now, self._floor)
        if len(self._peers) > self._capacity:
            self._peers.popitem(last=False)

    def moved(self, old: Hashable, new: Hashable) -> None:
        """A device that spoke from `old` now speaks from `new` (it rebooted into a new
        socket, or a NAT rebound it): the link is the same, so is what was learnt of
        it. Without this, the first exchanges at the new address (the reads that verify
        an update) would start over at 2 s, and a lost one would cost 2-3 s, not ~0.5."""
        known = self._peers.get(old)
        if known is None or old == new:
            return
        self._peers[new] = known
        self._peers.move_to_end(new)
        if len(self._peers) > self._capacity:
            self._peers.popitem(last=False)

    def peer(self, peer: Hashable) -> PeerRto | None:
        """What is known of `peer` (None: nothing, its RTO is `INITIAL_RTO`)."""
        return self._peers.get(peer)
