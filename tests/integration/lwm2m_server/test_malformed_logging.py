"""Malformed datagrams are logged so that a flood cannot fill the disk: each at DEBUG,
at most one INFO summary per minute. Raw datagrams on real servers on loopback ports;
the summary interval runs on an injected clock, so nothing sleeps."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from aiocoap import Context, resource

from reconciler.lwm2m.hardening import SUMMARY_SECONDS, DedupCache, harden
from reconciler.lwm2m.logbudget import BURST
from reconciler.lwm2m.server import Lwm2mServer

from .conftest import FakeClock, RawSocket, open_raw, reset

WIRE = "reconciler.lwm2m.hardening"


def malformed_con(mid: int) -> bytes:
    return bytes((0x49, 0x01, mid >> 8, mid & 0xFF)) + b"A" * 9  # token length 9


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == WIRE and r.levelno == level and "malformed" in r.getMessage()]


async def send_malformed(raw: RawSocket, mids: range) -> None:
    for mid in mids:
        raw.send(malformed_con(mid))
    for mid in mids:  # every one is answered, so every one has been logged
        assert await raw.receive() == reset(mid)


@pytest.fixture
async def hardened(clock: FakeClock) -> AsyncIterator[tuple[DedupCache, RawSocket]]:
    """An aiocoap server context hardened with the test's clock, and a raw socket to it."""
    context = await Context.create_server_context(
        resource.Site(), bind=("127.0.0.1", 0), transports=["udp6"])
    transport = None
    try:
        caches = harden(context, clock=clock)
        interface = context.request_interfaces[0].token_interface.message_interface
        port = interface.transport.get_extra_info("socket").getsockname()[1]
        transport, raw = await open_raw(port)
        yield caches[0], raw
    finally:
        if transport is not None:
            transport.close()
        await context.shutdown()


async def test_malformed_datagrams_are_each_logged_at_debug_and_summarized_once_a_minute(
    hardened: tuple[DedupCache, RawSocket], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    cache, raw = hardened
    caplog.set_level(logging.DEBUG, logger=WIRE)

    await send_malformed(raw, range(1, 41))
    assert len(lines(caplog, logging.DEBUG)) == 40
    assert len(lines(caplog, logging.INFO)) == 1  # the first one, told at once
    assert lines(caplog, logging.INFO)[0].startswith("1 malformed CoAP datagram(s)")

    clock.now += SUMMARY_SECONDS - 1
    cache.tick()
    assert len(lines(caplog, logging.INFO)) == 1  # still within the minute
    clock.now += 1
    cache.tick()  # the flood stopped: the periodic tick tells what is left
    assert lines(caplog, logging.INFO)[1].startswith(
        "39 malformed CoAP datagram(s) reset or ignored in the last 60 s")


async def test_a_summary_is_due_with_the_first_datagram_after_the_minute(
    hardened: tuple[DedupCache, RawSocket], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    cache, raw = hardened
    caplog.set_level(logging.DEBUG, logger=WIRE)
    await send_malformed(raw, range(1, 11))

    clock.now += 90
    await send_malformed(raw, range(11, 13))  # the 11th is told with the 9 before it

    told = lines(caplog, logging.INFO)
    assert len(told) == 2 and told[1].startswith("10 malformed CoAP datagram(s)")
    assert "in the last 90 s" in told[1] and "token length 9" in told[1]
    clock.now += SUMMARY_SECONDS
    cache.tick()  # tells the 12th
    clock.now += SUMMARY_SECONDS
    cache.tick()  # a quiet minute: nothing to tell, and the next one is told at once
    await send_malformed(raw, range(13, 14))
    told = lines(caplog, logging.INFO)
    assert len(told) == 4 and told[2].startswith("1 malformed") and told[3].startswith("1 ")


async def test_a_flood_on_the_server_port_writes_one_info_line(
    server: Lwm2mServer, raw: RawSocket, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=WIRE)
    for mid in range(500):
        tkl = 9 + mid % 7
        raw.send(bytes((0x50 | tkl, 0x01, mid >> 8, mid & 0xFF)) + b"A" * tkl)  # NONs
    await send_malformed(raw, range(500, 520))

    # each one at DEBUG, up to the log budget's burst (the rest are counted), one summary
    assert len(lines(caplog, logging.DEBUG)) == BURST
    assert len(lines(caplog, logging.INFO)) == 1
    assert not [r for r in caplog.records if r.name == WIRE and r.levelno > logging.INFO]
