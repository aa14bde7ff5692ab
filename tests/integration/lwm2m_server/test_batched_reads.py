"""Block GETs read with one recvmmsg and answered with one sendmmsg (`batchio`), on the
server's real socket and on sockets set up as aiocoap's udp6 sets up its own: answers
leave from the address each request was sent to (a wildcard bind), what the fast path
declines reaches aiocoap exactly as recvmsg would have given it, independent clients
download byte-exact through the batch, and another peer's ICMP error costs no answer."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from aiocoap import Context, Message
from aiocoap.numbers.codes import Code
from builders.ports import free_udp_port
from builders.tools import finished, require_tool

from reconciler.lwm2m import coapframe
from reconciler.lwm2m.aiocoap_adapter import udp_sockets
from reconciler.lwm2m.batchio import SLOTS, DatagramBatch
from reconciler.lwm2m.firmware import block_value
from reconciler.lwm2m.server import Lwm2mServer

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="recvmmsg/sendmmsg are Linux's")
IMAGE = os.urandom(24 * 1024 + 11)
DECLINED = object()


def _counting_reads(server: Lwm2mServer) -> list[int]:
    """A counter of the datagrams aiocoap's transport reads one at a time (recvmsg):
    the first of each wake-up or poll. The batch reads the rest past it."""
    reads = [0]

    def counting(previous: Any) -> Any:
        def handler(*datagram: Any) -> None:
            reads[0] += 1
            previous(*datagram)
        return handler

    for udp in udp_sockets(server.context):
        udp.wrap_receive(counting)
    return reads


def _block_get(path: str, n: int) -> bytes:
    options = [(coapframe.URI_PATH, s.encode()) for s in path.strip("/").split("/")]
    options.append((coapframe.BLOCK2, coapframe.uint(block_value(n, False, 6))))
    return coapframe.build(coapframe.CON, coapframe.GET, n, n.to_bytes(2, "big"),
                           coapframe.tail(options))


@pytest.fixture
async def wildcard_server() -> Any:
    srv = Lwm2mServer("::", 0)
    await srv.start()
    yield srv
    await srv.stop()


def _client(family: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
    sock.setblocking(False)
    return sock


async def test_a_burst_on_a_wildcard_bind_is_answered_from_each_address_asked(
        wildcard_server: Lwm2mServer) -> None:
    """Requests to 127.0.0.2, 127.0.0.1 and ::1 queued together: each answer comes from
    the address its request went to (with the wrong source a client's stack drops it),
    and a CoAP ping among them still reaches aiocoap and is reset from the right one."""
    server = wildcard_server
    path = urlparse(server.offer_firmware("dev-fw", "img1", IMAGE)).path
    reads = _counting_reads(server)
    targets = [(socket.AF_INET, "127.0.0.2"), (socket.AF_INET, "127.0.0.1"),
               (socket.AF_INET6, "::1")]
    clients = [_client(family) for family, _ in targets]
    loop = asyncio.get_running_loop()
    try:
        for n in range(20):  # queued before the server's loop runs: one wake-up reads all
            for sock, (_, host) in zip(clients, targets, strict=True):
                sock.sendto(_block_get(path, n), (host, server.port))
            if n == 10:  # mid-batch: the answers after it move up a slot to be sent
                clients[0].sendto(coapframe.build(coapframe.CON, coapframe.EMPTY, 0xFFFF, b""),
                                  ("127.0.0.2", server.port))
        for sock, (_, host), expected in zip(clients, targets, (21, 20, 20), strict=True):
            got = [await asyncio.wait_for(loop.sock_recvfrom(sock, 2048), 5)
                   for _ in range(expected)]
            assert {address[0] for _, address in got} == {host}
            answers = [coapframe.parse(data) for data, _ in got]
            blocks = sorted((a.mid, a.payload) for a in answers if a.code == coapframe.CONTENT)
            assert blocks == [(n, IMAGE[n * 1024 : (n + 1) * 1024]) for n in range(20)]
            if host == "127.0.0.2":
                assert [(a.mtype, a.mid) for a in answers if a.code == coapframe.EMPTY] == [
                    (coapframe.RST, 0xFFFF)]
    finally:
        for sock in clients:
            sock.close()
    assert reads[0] <= 3  # 61 datagrams: nearly all read by the batch


@pytest.fixture
def udp6_like() -> Iterator[socket.socket]:
    """A socket set up as aiocoap's udp6 sets up its own: dual stack on the wildcard,
    IPV6_RECVPKTINFO, IP(V6)_RECVERR."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, 25, 1)  # IPV6_RECVERR
    sock.setsockopt(socket.IPPROTO_IP, 11, 1)  # IP_RECVERR
    sock.bind(("::", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


def _batch(sock: socket.socket, errors: list[OSError]) -> DatagramBatch:
    def send_one(data: bytes, ancdata: list[Any], address: Any) -> None:
        sock.sendmsg((data,), ancdata, 0, address)

    batch = DatagramBatch.open(sock, send_one, errors.append)
    assert batch is not None
    return batch


def test_what_the_batch_declines_is_handed_on_as_recvmsg_returns_it(
        udp6_like: socket.socket) -> None:
    port = udp6_like.getsockname()[1]
    senders = [_client(socket.AF_INET), _client(socket.AF_INET6)]
    datagrams = [b"\x40\x01\x00\x01", os.urandom(300), os.urandom(5000)]  # 5000: truncated
    try:
        for sock, host in zip(senders, ("127.0.0.2", "::1"), strict=True):
            for data in datagrams:
                sock.sendto(data, (host, port))
        # The same datagrams again, read through the batch this time.
        expected = [udp6_like.recvmsg(4096, 1024) for _ in range(6)]
        for sock, host in zip(senders, ("127.0.0.2", "::1"), strict=True):
            for data in datagrams:
                sock.sendto(data, (host, port))
        passed: list[tuple[bytes, list[Any], int, Any]] = []
        errors: list[OSError] = []
        count, handled = _batch(udp6_like, errors).round(
            lambda data: DECLINED, DECLINED, lambda *message: passed.append(message))
    finally:
        for sock in senders:
            sock.close()
    assert (count, handled, errors) == (6, 0, [])
    assert passed == expected
    assert {message[3][0] for message in passed} == {"::ffff:127.0.0.1", "::1"}
    assert [message[2] & socket.MSG_TRUNC for message in passed] == [0, 0, socket.MSG_TRUNC] * 2
    assert {len(message[1]) for message in passed} == {1}  # the pktinfo, nothing else


def test_another_peers_port_unreachable_costs_no_batched_answer(
        udp6_like: socket.socket) -> None:
    """An ICMP error caused by a datagram to a vanished peer (sent here between the
    batch's read and its send) fails the next send whatever its destination: the batch
    tries again, so every answer of the round arrives and no error is pinned on them."""
    port = udp6_like.getsockname()[1]
    vanished = ("::ffff:127.0.0.1", free_udp_port(), 0, 0)  # nobody's: no port-0 socket's
    peer = _client(socket.AF_INET)
    requests = [bytes((0x40, 0x01, 0, n)) for n in range(SLOTS + 6)]  # two rounds
    sent_to_ghost: list[bool] = []

    def handle(data: bytes) -> bytes:
        if not sent_to_ghost:
            udp6_like.sendto(b"\x50\x00\x00\x01", vanished)
            sent_to_ghost.append(True)
        return b"\x60\x45" + data[2:4]

    try:
        for data in requests:
            peer.sendto(data, ("127.0.0.1", port))
        errors: list[OSError] = []
        batch = _batch(udp6_like, errors)
        rounds = [batch.round(handle, DECLINED, lambda *message: None) for _ in range(3)]
        answers = []
        while True:
            try:
                answers.append(peer.recv(64))
            except BlockingIOError:
                break
    finally:
        peer.close()
    assert rounds == [(SLOTS, SLOTS), (6, 6), (0, 0)]
    assert sorted(answers) == sorted(b"\x60\x45" + data[2:4] for data in requests)
    assert errors == []
    # the error stays on the error queue for aiocoap, with the vanished peer's address
    _, _, _, address = udp6_like.recvmsg(64, 1024, socket.MSG_ERRQUEUE)
    assert address[1] == vanished[1]


async def _aiocoap_download(uri: str) -> bytes:
    context = await Context.create_client_context(transports=["udp6"])
    try:
        response = await asyncio.wait_for(
            context.request(Message(code=Code.GET, uri=uri)).response, 20)
        assert response.code == Code.CONTENT
        return bytes(response.payload)
    finally:
        await context.shutdown()


async def _libcoap_download(client: str, uri: str, out: Path) -> bytes:
    code, _, err = await finished(client, "-B", "20", "-b", "1024", "-o", str(out), uri,
                                  timeout=25)
    assert code == 0, err
    return out.read_bytes()


async def test_aiocoap_and_libcoap_clients_download_byte_exact_through_the_batch(
        server: Lwm2mServer, tmp_path: Path) -> None:
    """Six concurrent downloads (three aiocoap clients, three coap-client-notls): while
    blocks stream the socket is read each poll, and all but the first datagram queued
    since are read and answered by one recvmmsg and one sendmmsg."""
    libcoap = require_tool("coap-client-notls")
    uris = [server.offer_firmware(f"dev-{n}", "img1", IMAGE) for n in range(6)]
    reads = _counting_reads(server)
    got = await asyncio.gather(
        *(_aiocoap_download(uri) for uri in uris[:3]),
        *(_libcoap_download(libcoap, uri, tmp_path / f"{n}.bin")
          for n, uri in enumerate(uris[3:])))
    assert got == [IMAGE] * 6
    blocks = server.firmware.blocks_sent
    assert blocks >= 6 * 25
    assert reads[0] < blocks / 2  # most blocks were read by the batch, not one by one
