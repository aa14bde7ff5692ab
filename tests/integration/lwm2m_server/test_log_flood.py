"""A flood of junk datagrams makes a bounded number of log records: aiocoap's own loggers
(`coap-server` tells every CoAP ping at INFO) and ours go through the server's budget."""

from __future__ import annotations

import logging

import pytest

from reconciler.lwm2m.logbudget import BURST, GUARDED
from reconciler.lwm2m.server import Lwm2mServer

from .conftest import RawSocket, reset

FLOOD = 2000


def _guarded(record: logging.LogRecord) -> bool:
    return any(record.name == p or record.name.startswith(p + ".") for p in GUARDED)


async def test_a_flood_of_junk_datagrams_makes_a_bounded_number_of_log_records(
    server: Lwm2mServer, raw: RawSocket, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for first in range(0, FLOOD, 100):  # in rounds: the raw socket's buffer is small
        for mid in range(first, first + 100):
            raw.send(bytes((0x40, 0x00, mid >> 8, mid & 0xFF)))  # a CoAP ping (empty CON)
        for mid in range(first, first + 100):
            assert await raw.receive() == reset(mid)  # answered: it went through aiocoap

    told = [r for r in caplog.records if _guarded(r)]
    assert 1 <= len(told) <= 2 * BURST, [r.getMessage() for r in told][:5]

    server.log_budget.flush(force=True)  # as the sweeper does once the window ends
    summaries = [r.getMessage() for r in caplog.records
                 if _guarded(r) and "suppressed" in r.getMessage()]
    assert summaries and any(str(FLOOD - BURST) in s for s in summaries), summaries
