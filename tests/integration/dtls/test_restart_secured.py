"""After a restart, secured registrations (issue 12 item 3 of the finish): their DTLS
sessions died with the last run and a server cannot open one to a device, so a
registration made in a session is restored waiting for the device's next session. Nothing
is sent to its address meanwhile (above all no plaintext: requests are held as for a
sleeping device), plain CoAP cannot take it over, and the device's next Update in a new
session of its identity resumes it under the registration id it knows."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from aiocoap import CON, Message
from aiocoap.numbers.codes import Code

from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.lwm2m import NO_FORMATS, Path, Registration
from reconciler.simulator.coap import Reliability
from reconciler.simulator.fleet import Fleet
from reconciler.simulator.spec import DeviceSpec, Timing

from .conftest import KEYS, secured, started, until

FW = Path(3, 0, 3)
# Updates only when told to; a lost session is noticed after one retransmission
TIMING = Timing(update_every=3600.0, retry_delay=0.2,
                reliability=Reliability(ack_timeout=0.5, max_retransmit=1))


@contextmanager
def raw_peer() -> Iterator[socket.socket]:
    """A UDP socket standing in for a device's address: it only listens."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


def registration(endpoint: str, at: socket.socket, *, secured: bool) -> Registration:
    now = time.time()
    return Registration(f"r{endpoint[-1]}", endpoint, "127.0.0.1", at.getsockname()[1],
                        300, "1.1", "U", False, ("/3/0", "/5/0"), now, now, secured=secured)


async def test_a_restored_secured_registration_gets_no_plaintext_until_its_session(
) -> None:
    server = Lwm2mServer("127.0.0.1", 0, coaps=("127.0.0.1", 0), psk=KEYS.get)
    await server.start(restoring=True)
    loop = asyncio.get_running_loop()
    with raw_peer() as secured_device, raw_peer() as plain_device:
        assert server.restore([
            (registration("urn:dev:1", secured_device, secured=True), NO_FORMATS),
            (registration("urn:dev:9", plain_device, secured=False), NO_FORMATS)]) == 2
        held = asyncio.create_task(server.client("urn:dev:1").read(FW, timeout=30))
        asked = asyncio.create_task(server.client("urn:dev:9").read(FW, timeout=30))
        try:
            # the plain registration is asked at once (so the secured one had its chance)
            request = Message.decode(await asyncio.wait_for(loop.sock_recv(plain_device,
                                                                           1500), 5))
            assert (request.code, request.opt.uri_path) == (Code.GET, ("3", "0", "3"))
            await until(lambda: server.queue.held("urn:dev:1") == 1)
            with pytest.raises(BlockingIOError):
                secured_device.recv(1500)  # not one datagram, plaintext or other
            assert not server.is_awake("urn:dev:1") and server.is_awake("urn:dev:9")
            # plain CoAP from its address cannot take the registration over
            update = Message(_mtype=CON, _mid=9, _token=b"up", code=Code.POST,
                             uri_path=("rd", "r1"))
            secured_device.sendto(update.encode(), ("127.0.0.1", server.port))
            answer = Message.decode(await asyncio.wait_for(loop.sock_recv(secured_device,
                                                                          1500), 5))
            assert answer.code == Code.FORBIDDEN
            status = server.dtls_status()
            assert status is not None
            assert (status["awaiting_session"], status["refused_security_context"]) == (1, 1)
            assert not held.done()
        finally:
            held.cancel()
            asked.cancel()
            await asyncio.gather(held, asked, return_exceptions=True)
            await server.stop()


async def test_a_secured_device_resumes_with_its_next_update_in_a_new_session() -> None:
    first = await started(dict(KEYS))
    port = first.coaps_port
    psk = (b"dev-1", KEYS[b"dev-1"][0])
    fleet = Fleet(f"coaps://127.0.0.1:{port}", [DeviceSpec("urn:dev:1", version="1.0",
                                                           psk=psk)], None, TIMING)
    try:
        await fleet.start(wait_registered=True, timeout=20)
        reg = first.registration("urn:dev:1")
        assert reg is not None and reg.secured
        await first.stop()
        second = Lwm2mServer("127.0.0.1", 0, coaps=("127.0.0.1", port), psk=KEYS.get,
                             register_check=secured)
        await second.start(restoring=True)
        try:
            assert second.restore([(reg, NO_FORMATS)]) == 1
            read = asyncio.create_task(second.client("urn:dev:1").read(FW, timeout=30))
            await until(lambda: second.queue.held("urn:dev:1") == 1)
            device = fleet.device("urn:dev:1")
            device.trigger_update()
            assert await asyncio.wait_for(read, 30) == {FW: "1.0"}
            back = second.registration("urn:dev:1")
            assert back is not None and back.registration_id == reg.registration_id
            assert back.secured and (device.registrations, device.updates) == (1, 1)
            status = second.dtls_status()
            assert status is not None
            assert (status["awaiting_session"], status["resumed"]) == (0, 1)
        finally:
            await second.stop()
    finally:
        await fleet.stop(deregister=False)  # both servers are gone: De-registering only waits out
        # Timing.deregister_timeout (3 s) for nothing
