"""What a restart needs but no datagram waits for is written in a batch, off the loop: offers
that expired leave the state file (not only at the next start), and the read format a
device accepted is kept as soon as it is negotiated (not only at its next Update), so a
restarted server asks in it first instead of earning a 4.06 again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiocoap import Message
from aiocoap.numbers.codes import Code
from scripted_device import ScriptedDevice

from reconciler.controller.restore import RestartRecords
from reconciler.lwm2m.codecs import ContentFormat
from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.lwm2m import FirmwareOffer, RegistrationEvent, RegistrationEventKind
from reconciler.model.lwm2m import Path as LwPath
from reconciler.store import open_store

IMAGE = bytes(range(256)) * 4
LIFETIME = 100.0


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def test_offers_that_expire_leave_the_state_file_in_one_batch(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    clock = FakeClock()
    server = Lwm2mServer("127.0.0.1", 0, clock=clock, sweep_interval=0.01,
                         offer_lifetime=LIFETIME)
    records = RestartRecords(store, server)
    server.subscribe_offers(records.on_offer)
    server.subscribe_offer_expiry(records.on_offers_expired)
    expiries: asyncio.Queue[float] = asyncio.Queue()
    server.subscribe_offer_expiry(expiries.put_nowait)
    await server.start()
    try:
        for n in range(3):
            server.offer_firmware(f"ep{n}", "img", IMAGE)
        clock.now += LIFETIME
        server.offer_firmware("ep-late", "img", IMAGE)  # offered now: lives on
        told = await asyncio.wait_for(expiries.get(), 5)
        assert told == clock.now and expiries.empty()  # one call for the three
        assert len(server.firmware) == 1
        await records.flush()
    finally:
        await server.stop()
    assert [o.endpoint for o in store.live_offers(0.0)] == ["ep-late"]
    store.close()


def test_expired_offers_are_deleted_across_slices_and_live_ones_stay(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    try:
        for n in range(2_500):
            store.put_offer(FirmwareOffer(f"t{n}", f"ep{n}", "img", 10.0 + n % 7))
        store.put_offer(FirmwareOffer("live", "ep-live", "img", 1_000.0))
        assert store.forget_expired_offers(100.0) == 2_500
        assert [o.token for o in store.live_offers(0.0)] == ["live"]
    finally:
        store.close()


class TlvOnly(ScriptedDevice):
    """Answers reads in TLV only: SenML (what an LwM2M 1.1 server asks first) gets 4.06."""

    def answer(self, message: Message, path: LwPath) -> Message | None:
        if message.code == Code.GET and message.opt.accept in (
                ContentFormat.SENML_CBOR, ContentFormat.SENML_JSON):
            return self.reply(message, Code.NOT_ACCEPTABLE)
        return super().answer(message, path)


async def test_the_read_format_a_device_accepted_is_persisted_when_negotiated(
        tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    server = Lwm2mServer("127.0.0.1", 0)
    records = RestartRecords(store, server)
    told: list[tuple[str, str, int | None]] = []
    server.subscribe_formats(records.on_format)
    server.subscribe_formats(lambda *args: told.append(args))

    def persist(event: RegistrationEvent) -> None:  # as the controller does
        if event.kind is RegistrationEventKind.REGISTERED:
            store.put_registration(event.registration, server.formats("ep"))

    server.subscribe(persist)
    await server.start()
    loop = asyncio.get_running_loop()
    transport, device = await loop.create_datagram_endpoint(
        lambda: TlvOnly({LwPath(3, 0, 3): "1.0"}), remote_addr=("127.0.0.1", server.port))
    try:
        device.register("ep")
        await asyncio.wait_for(device.registered.wait(), 5)
        for _ in range(2):
            assert await server.client("ep").read(LwPath(3, 0, 3), timeout=5) == {
                LwPath(3, 0, 3): "1.0"}
        await records.flush()
    finally:
        transport.close()
        await server.stop()
    assert [fmt for _, _, fmt in told] == [ContentFormat.TLV]  # news only: told once
    (reg, formats), = store.live_registrations(time.time())
    assert reg.registration_id == told[0][1] and formats.read == ContentFormat.TLV
    # SenML CBOR and SenML JSON earned 4.06, then TLV; the second read in TLV at once
    assert [code for _, code, _ in device.requests].count("GET") == 4
    store.close()
