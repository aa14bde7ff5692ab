"""The server's own Confirmables retransmitted on each peer's estimated RTO (`rto.py`).

`AdaptiveTimers` is what `aiocoap_adapter.MessageLayer.time_exchanges` asks about every
Confirmable the server sends (Read, Write, Observe, Execute, Discover, each pushed
block; over plain CoAP and inside DTLS sessions alike): the first timeout comes from the
peer's RTO (aiocoap dithers it by ACK_RANDOM_FACTOR, x1-1.5, as CoCoA does), each later
one twice the one before (RFC 7252's backoff; `rto.py` says why not CoCoA's variable
factor), and the answer's round-trip time, measured from the first transmission, goes
back into the peer's estimators (strong without retransmission, weak after 1-2).
MAX_RETRANSMIT stays RFC 7252's 4. What the devices send (Register, Update,
notifications, block GETs) keeps its own timers: those are the device's.

Installed by `Lwm2mServer.start` when `fota serve --coap-rto adaptive` (the default);
`fixed` leaves aiocoap's RFC 7252 timers alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiocoap import Message
from aiocoap.numbers.constants import TransportTuning

from .rto import MAX_RETRANSMIT, RtoTable, next_timeout


class ExchangeTuning(TransportTuning):  # type: ignore[misc]  # aiocoap is untyped
    """aiocoap's transport tuning for one of our Confirmables: its first ACK_TIMEOUT is the
    peer's RTO, and it remembers what the estimator needs when the answer comes."""

    MAX_RETRANSMIT = MAX_RETRANSMIT

    def __init__(self, rto: float, sent_at: float) -> None:
        self.ACK_TIMEOUT = rto  # the RTO this exchange started with
        self.sent_at = sent_at
        self.retransmissions = 0


class AdaptiveTimers:
    """`aiocoap_adapter.ExchangeTimers` over an `RtoTable` (keyed by the aiocoap remote)."""

    def __init__(self, table: RtoTable | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.table = table if table is not None else RtoTable(clock=clock)
        self._clock = clock

    def started(self, message: Message) -> None:
        message.transport_tuning = ExchangeTuning(self.table.rto(_peer(message)),
                                                  self._clock())

    def backed_off(self, message: Message, previous: float, retransmissions: int) -> float:
        tuning = message.transport_tuning
        if not isinstance(tuning, ExchangeTuning):
            return previous * 2  # not started by us: aiocoap's own doubling
        tuning.retransmissions = retransmissions
        return next_timeout(previous)

    def answered(self, message: Message) -> None:
        tuning = message.transport_tuning
        if not isinstance(tuning, ExchangeTuning):
            return
        self.table.answered(_peer(message), self._clock() - tuning.sent_at,
                            tuning.retransmissions)


def _peer(message: Message) -> Any:
    return message.remote
