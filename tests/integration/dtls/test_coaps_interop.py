"""libcoap's coap-client-openssl (OpenSSL's DTLS, libcoap's CoAP) against our CoAPs
listener: it registers and downloads firmware byte-exact inside a DTLS-PSK session, is
refused with a wrong key or identity (it exits 0 then too: judged by what it received),
and a new handshake from an address:port that still has a session (a reboot, or another
device behind a NAT that reused the port) replaces that session (issue 12)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from builders.ports import free_udp_port

from reconciler.lwm2m.server import Lwm2mServer

from .conftest import KEYS, LINKS, coap, reap, register_uri, spawn, started, until

# libcoap's -v 6 dump shows an answer's code as "c:2.01"; a bare "2.01" also matches a
# log timestamp such as "22:15:02.019", which made the refusal test fail now and then.
CREATED = re.compile(r"\bc:2\.01\b")


async def test_libcoap_registers_and_downloads_byte_exact_over_dtls(
    coap_client: str, server: Lwm2mServer, tmp_path: Path
) -> None:
    run = await coap(coap_client, "dev-1", "key-of-device-1",
                     register_uri(server, "urn:dev:1"), "-m", "post", "-e", LINKS)
    assert CREATED.search(run.output), run.output
    assert server.registration("urn:dev:1") is not None
    image = os.urandom(7 * 1024 + 11)
    uri = server.offer_firmware("urn:dev:1", "img", image)
    assert uri.startswith(f"coaps://127.0.0.1:{server.coaps_port}/fw/")
    out = tmp_path / "image.bin"
    run = await coap(coap_client, "dev-1", "key-of-device-1", uri, "-b", "512", "-o", str(out))
    assert out.read_bytes() == image, run.output
    status = server.dtls_status()
    assert status is not None
    assert status["handshakes"] == 2 and status["handshake_failures"] == 0


async def test_a_wrong_key_or_identity_gets_nothing(
    coap_client: str, server: Lwm2mServer, tmp_path: Path
) -> None:
    uri = server.offer_firmware("urn:dev:1", "img", b"firmware bytes")
    assert uri.startswith("coaps://")  # the policy secures urn:dev:1, registered or not
    for identity, key in (("dev-1", "not-the-key"), ("nobody", "key-of-device-1")):
        out = tmp_path / f"{identity}.bin"
        run = await coap(coap_client, identity, key, uri, "-o", str(out), wait=2)
        assert not out.exists() or out.read_bytes() == b"", run.output
        run = await coap(coap_client, identity, key, register_uri(server, "urn:dev:1"),
                         "-m", "post", "-e", LINKS, wait=2)
        assert not CREATED.search(run.output), run.output
    assert server.registration("urn:dev:1") is None
    status = server.dtls_status()
    assert status is not None
    # An unknown identity gets a fatal alert at once; a wrong key's Finished does not
    # decrypt and is dropped (RFC 6347 §4.1.2.7), its handshake times out later.
    assert status["handshakes"] == 0 and status["handshake_failures"] == 2
    assert status["unknown_identities"] == 2 and status["handshaking"] <= 2


async def test_another_device_of_the_same_identity_cannot_fetch_its_firmware(
    coap_client: str, server: Lwm2mServer, tmp_path: Path
) -> None:
    uri = server.offer_firmware("urn:dev:1", "img", b"firmware of device 1")
    out = tmp_path / "stolen.bin"
    run = await coap(coap_client, "dev-2", "key-of-device-2", uri, "-o", str(out))
    assert "4.04" in run.output, run.output
    assert not out.exists() or b"firmware" not in out.read_bytes()


async def test_new_handshakes_from_a_reused_address_port_replace_its_session(
    coap_client: str, keys: dict[bytes, tuple[bytes, str]], tmp_path: Path
) -> None:
    # Register is held until restore(): each client completes its handshake, waits for
    # its answer, and is killed without a close alert, as a rebooting device vanishes.
    server = await started(keys, restoring=True)
    try:
        port = str(free_udp_port())
        for identity in ("dev-1", "dev-2", "dev-1"):
            key = KEYS[identity.encode()][0].decode()
            endpoint = KEYS[identity.encode()][1]
            client = await spawn(coap_client, identity, key, register_uri(server, endpoint),
                                 "-p", port, "-m", "post", "-e", LINKS)
            try:
                await until(lambda i=identity: _session_identity(server, port) == i.encode())
            finally:
                await reap(client)
        assert _replaced(server) == 2
        last = await spawn(coap_client, "dev-1", "key-of-device-1",
                           register_uri(server, "urn:dev:1"), "-p", port, "-m", "post",
                           "-e", LINKS)
        await until(lambda: _replaced(server) == 3)
        server.restore([])  # the held Register is answered now
        out, _ = await last.communicate()
        assert CREATED.search(out.decode(errors="replace")), out
        assert server.registration("urn:dev:1") is not None
    finally:
        await server.stop()


def _session_identity(server: Lwm2mServer, port: str) -> bytes | None:
    for session in server.dtls_sessions():
        if session.address[1] == int(port):
            return session.identity
    return None


def _replaced(server: Lwm2mServer) -> int:
    status = server.dtls_status()
    return 0 if status is None else status["replaced"]
