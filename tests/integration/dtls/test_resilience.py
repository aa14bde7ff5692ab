"""The CoAPs listener under abuse and under credential changes (issue 12 item 4): a flood
of ClientHellos leaves no per-peer state (tinydtls answers each with a stateless
HelloVerifyRequest) and the server keeps serving, handshakes past the cap are dropped
until one completes, and revoking an identity closes its session at once."""

from __future__ import annotations

import asyncio
import os
import socket
import struct

from reconciler.lwm2m.server import Lwm2mServer
from reconciler.simulator.coap import Reliability
from reconciler.simulator.fleet import Fleet
from reconciler.simulator.spec import DeviceSpec, Timing

from .conftest import KEYS, until

FAST = Timing(retry_delay=0.2, reliability=Reliability(ack_timeout=0.5, max_retransmit=2))
PSK_AES_128_CCM_8 = b"\xc0\xa8"
# tinydtls insists on RFC 5746 (the SCSV) and RFC 7627 (an empty extension)
EMPTY_RENEGOTIATION_INFO = b"\x00\xff"
EXTENDED_MASTER_SECRET = b"\x00\x17\x00\x00"


def client_hello(seq: int, cookie: bytes = b"", random: bytes | None = None) -> bytes:
    """A DTLS 1.2 ClientHello record offering the PSK suite tinydtls speaks."""
    body = (b"\xfe\xfd" + (random or os.urandom(32)) + b"\x00" + bytes([len(cookie)]) + cookie
            + b"\x00\x04" + PSK_AES_128_CCM_8 + EMPTY_RENEGOTIATION_INFO + b"\x01\x00"
            + b"\x00\x04" + EXTENDED_MASTER_SECRET)
    handshake = (b"\x01" + len(body).to_bytes(3, "big") + struct.pack(">H", 0)
                 + b"\x00\x00\x00" + len(body).to_bytes(3, "big") + body)
    return (b"\x16\xfe\xfd\x00\x00" + seq.to_bytes(6, "big")
            + struct.pack(">H", len(handshake)) + handshake)


def rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


async def test_a_flood_of_client_hellos_keeps_no_state_and_the_server_still_serves(
    server: Lwm2mServer, keys: dict[bytes, tuple[bytes, str]]
) -> None:
    target = ("127.0.0.1", server.coaps_port)
    before = rss_kib()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flood:
        flood.bind(("127.0.0.1", 0))
        sent = 0
        for batch in range(200):  # 10,000 from one source: half without, half bad cookies
            for i in range(50):
                cookie = os.urandom(32) if i % 2 else b""
                flood.sendto(client_hello(batch * 50 + i, cookie), target)
            sent += 50
            await until(lambda n=sent: _status(server)["cookies_sent"] >= n)
    grown = rss_kib() - before
    status = _status(server)
    assert status["cookies_sent"] == 10_000
    assert status["handshaking"] == 0 and status["sessions"] == 0
    assert grown < 4 * 1024, f"RSS grew {grown} KiB over 10,000 ClientHellos"
    fleet = Fleet(f"coaps://127.0.0.1:{server.coaps_port}",
                  [DeviceSpec("urn:dev:1", psk=(b"dev-1", KEYS[b"dev-1"][0]))], None, FAST)
    await fleet.start()
    try:
        await fleet.device("urn:dev:1").wait_registered()
    finally:
        await fleet.stop()


async def test_revoking_an_identity_closes_its_session_and_it_cannot_come_back(
    server: Lwm2mServer, keys: dict[bytes, tuple[bytes, str]]
) -> None:
    fleet = Fleet(f"coaps://127.0.0.1:{server.coaps_port}",
                  [DeviceSpec("urn:dev:1", psk=(b"dev-1", KEYS[b"dev-1"][0]))], None,
                  FAST)
    await fleet.start()
    try:
        device = fleet.device("urn:dev:1")
        await device.wait_registered()
        del keys[b"dev-1"]  # the credentials file lost it; the reload tells the server
        assert server.revoke_identities({b"dev-1"}) == 1
        assert _status(server)["sessions"] == 0 and _status(server)["revoked"] == 1
        failures = _status(server)["unknown_identities"]
        device.trigger_update()  # its next Update needs a new handshake: refused
        await until(lambda: _status(server)["unknown_identities"] > failures)
        assert _status(server)["sessions"] == 0
    finally:
        await fleet.stop(deregister=False)


def _status(server: Lwm2mServer) -> dict[str, int]:
    status = server.dtls_status()
    assert status is not None
    return status


async def test_handshakes_past_the_cap_wait_until_one_completes(
    keys: dict[bytes, tuple[bytes, str]]
) -> None:
    from reconciler.lwm2m.dtls_tinydtls import TinyDtlsServer

    sent: list[tuple[tuple[str, int], bytes]] = []
    binding = TinyDtlsServer(keys.get, lambda a, d: sent.append((a, d)), max_handshakes=1)
    first, second = ("::ffff:10.0.0.1", 1000), ("::ffff:10.0.0.2", 1000)
    random = os.urandom(32)
    binding.receive(first, client_hello(0, random=random), 0.0)
    cookie = _cookie(sent[-1][1])
    binding.receive(first, client_hello(1, cookie, random), 0.0)  # verified: a handshake starts
    assert binding.stats.handshaking == 1
    binding.receive(second, client_hello(0), 0.0)
    assert binding.stats.handshakes_refused == 1 and binding.stats.cookies_sent == 1
    binding.tick(31.0)  # the first never finished: it times out and frees its slot
    assert binding.stats.handshaking == 0 and binding.stats.handshake_failures == 1
    binding.receive(second, client_hello(0), 31.0)
    assert binding.stats.cookies_sent == 2
    await asyncio.sleep(0)


def _cookie(hello_verify: bytes) -> bytes:
    """The cookie of a HelloVerifyRequest record (after version, length-prefixed)."""
    body = hello_verify[13 + 12:]
    return body[3:3 + body[2]]


async def test_an_idle_session_expires_and_the_device_comes_back_with_a_new_handshake(
    keys: dict[bytes, tuple[bytes, str]]
) -> None:
    server = Lwm2mServer("127.0.0.1", 0, coaps=("127.0.0.1", 0), psk=keys.get,
                         dtls_idle_timeout=0.5)
    await server.start()
    fleet = Fleet(f"coaps://127.0.0.1:{server.coaps_port}",
                  [DeviceSpec("urn:dev:1", psk=(b"dev-1", KEYS[b"dev-1"][0]))], None, FAST)
    try:
        await fleet.start()
        device = fleet.device("urn:dev:1")
        await device.wait_registered()
        await until(lambda: _status(server)["expired"] == 1)
        assert _status(server)["sessions"] == 0
        updates = device.updates
        device.trigger_update()
        await device.wait_for(lambda: device.updates > updates)
        assert _status(server)["handshakes"] == 2
    finally:
        await fleet.stop()
        await server.stop()


async def test_an_identity_holds_a_bounded_number_of_sessions(server: Lwm2mServer) -> None:
    from aiocoap import GET, Message

    from reconciler.lwm2m.dtls_tinydtls import SESSIONS_PER_IDENTITY
    from reconciler.simulator.coap import Endpoint

    socks = [Endpoint(reliability=FAST.reliability)
             for _ in range(SESSIONS_PER_IDENTITY + 1)]
    try:
        for sock in socks:  # five sockets of one device (a NAT rebinding each time)
            await sock.open("127.0.0.1", 0, (b"dev-1", KEYS[b"dev-1"][0]))
            answer = await sock.request(Message(code=GET, uri_path=("nothing",)),
                                        ("127.0.0.1", server.coaps_port))
            assert str(answer.code) == "4.04 Not Found"
        assert _status(server)["sessions"] == SESSIONS_PER_IDENTITY
        assert _status(server)["evicted"] == 1
    finally:
        for sock in socks:
            sock.close()
