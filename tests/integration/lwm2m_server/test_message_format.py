"""RFC 7252 §3 message format errors, other versions and options a request may not
carry, as raw datagrams on real servers on loopback ports: the LwM2M server's port (the
firmware fast path first, then aiocoap) and a firmware block server (the fast path
alone). A format error in a Confirmable is answered with an empty Reset carrying its
message id (§4.2), in any other message silently ignored (§4.3), as is a message of
another version (§3); an unrecognized critical option earns 4.02 (§5.4.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type

from bench.blockserver import BlockServer
from reconciler.lwm2m.server import Lwm2mServer

from .conftest import RawSocket, open_raw, reset

CON, NON = 0x40, 0x50  # version 1 and the type, the token length still to be or-ed in


@pytest.fixture(params=["lwm2m server port", "firmware block server"])
async def peer(request: pytest.FixtureRequest, server: Lwm2mServer) -> AsyncIterator[RawSocket]:
    block = None
    port = server.port
    if request.param == "firmware block server":
        block = BlockServer(server.firmware)
        await block.start()
        port = block.port
    transport, protocol = await open_raw(port)
    try:
        yield protocol
    finally:
        transport.close()
        if block is not None:
            await block.stop()


async def assert_nothing_answered(peer: RawSocket, ping_mid: int = 0x7E57) -> None:
    """Datagrams on loopback arrive in order: when the answer to a later CoAP ping (an
    empty Confirmable, answered with a Reset) is the first thing back, the datagrams
    sent before it got no answer."""
    peer.send(bytes((CON, 0x00, ping_mid >> 8, ping_mid & 0xFF)))
    assert await peer.receive() == reset(ping_mid)


@pytest.mark.parametrize("tkl", range(9, 16))
async def test_a_confirmable_with_a_reserved_token_length_is_reset(
    peer: RawSocket, tkl: int
) -> None:
    peer.send(bytes((CON | tkl, 0x01, 0x00, 0x21)) + b"A" * tkl)

    assert await peer.receive() == reset(0x21)


@pytest.mark.parametrize("tkl", range(9, 16))
async def test_a_non_confirmable_with_a_reserved_token_length_is_ignored(
    peer: RawSocket, tkl: int
) -> None:
    peer.send(bytes((NON | tkl, 0x01, 0x00, 0x21)) + b"A" * tkl)

    await assert_nothing_answered(peer)


TRUNCATED_TOKENS = [(8, b"AAA"), (4, b""), (2, b"A")]


@pytest.mark.parametrize(("tkl", "present"), TRUNCATED_TOKENS)
async def test_a_confirmable_shorter_than_its_token_length_is_reset(
    peer: RawSocket, tkl: int, present: bytes
) -> None:
    peer.send(bytes((CON | tkl, 0x01, 0x00, 0x22)) + present)

    assert await peer.receive() == reset(0x22)


@pytest.mark.parametrize(("tkl", "present"), TRUNCATED_TOKENS)
async def test_a_non_confirmable_shorter_than_its_token_length_is_ignored(
    peer: RawSocket, tkl: int, present: bytes
) -> None:
    peer.send(bytes((NON | tkl, 0x01, 0x00, 0x22)) + present)

    await assert_nothing_answered(peer)


# POST /rd?ep=marker (on the LwM2M server) and GET /fw/x (on either), each ending in a
# payload marker with nothing after it
MARKER_ONLY = [
    bytes((0x01, 0x02, 0x00, 0x23)) + b"t\xb2rd\x47ep=mark\xff",
    bytes((0x01, 0x01, 0x00, 0x23)) + b"t\xb2fw\x01x\xff",
]


@pytest.mark.parametrize("datagram", MARKER_ONLY)
async def test_a_confirmable_with_a_payload_marker_and_no_payload_is_reset(
    peer: RawSocket, server: Lwm2mServer, datagram: bytes
) -> None:
    peer.send(bytes((datagram[0] | CON,)) + datagram[1:])

    assert await peer.receive() == reset(0x23)
    assert server.registrations() == []


@pytest.mark.parametrize("datagram", MARKER_ONLY)
async def test_a_non_confirmable_with_a_payload_marker_and_no_payload_is_ignored(
    peer: RawSocket, server: Lwm2mServer, datagram: bytes
) -> None:
    peer.send(bytes((datagram[0] | NON,)) + datagram[1:])

    await assert_nothing_answered(peer)
    assert server.registrations() == []


@pytest.mark.parametrize("version", [0, 2, 3])
@pytest.mark.parametrize("mtype", [CON, NON])
async def test_a_message_of_another_version_is_silently_ignored(
    peer: RawSocket, version: int, mtype: int
) -> None:
    # a GET of /fw/x, the firmware fast path's own kind of request, and an empty message
    header = (version << 6) | (mtype & 0x30)
    peer.send(bytes((header | 1, 0x01, 0x00, 0x24)) + b"t\xb2fw\x01x")
    peer.send(bytes((header, 0x00, 0x00, 0x25)))

    await assert_nothing_answered(peer)


async def test_an_unrecognized_critical_option_in_a_confirmable_get_is_a_bad_option(
    peer: RawSocket,
) -> None:
    peer.send(bytes((CON | 1, 0x01, 0x00, 0x26)) + b"t\xb2fw\x01x\xa1x")  # option 25

    answer = Message.decode(await peer.receive())

    assert (answer.mtype, answer.code, answer.mid, answer.token) == (
        Type.ACK, Code.BAD_OPTION, 0x26, b"t")


REGISTER = b"t\xb2rd\x47ep=crit"  # token "t", POST /rd?ep=crit, options to follow


@pytest.mark.parametrize(("datagram", "code"), [
    (REGISTER + b"\xa1x", Code.BAD_OPTION),  # option 25: critical, unassigned
    (b"t\x91x\x22rd\x47ep=crit", Code.BAD_OPTION),  # option 9 (OSCORE), not implemented
    (REGISTER + b"\xd5\x07coap:", Code.PROXYING_NOT_SUPPORTED),  # Proxy-Uri (35)
])
async def test_a_register_with_an_option_the_server_cannot_act_on_is_refused(
    server: Lwm2mServer, raw: RawSocket, datagram: bytes, code: Code
) -> None:
    raw.send(bytes((CON | 1, 0x02, 0x00, 0x27)) + datagram)

    answer = Message.decode(await raw.receive())

    assert (answer.mtype, answer.code, answer.mid, answer.token) == (Type.ACK, code, 0x27, b"t")
    assert server.registrations() == []


async def test_an_if_match_the_server_does_not_implement_is_a_bad_option(
    server: Lwm2mServer, raw: RawSocket
) -> None:
    raw.send(bytes((CON | 1, 0x02, 0x00, 0x28)) + b"t\x10\xa2rd\x47ep=crit")  # If-Match (1)

    answer = Message.decode(await raw.receive())

    assert (answer.code, answer.mid) == (Code.BAD_OPTION, 0x28)
    assert server.registrations() == []


async def test_a_non_confirmable_register_with_an_unrecognized_critical_option_is_ignored(
    server: Lwm2mServer, raw: RawSocket
) -> None:
    raw.send(bytes((NON | 1, 0x02, 0x00, 0x29)) + REGISTER + b"\xa1x")

    await assert_nothing_answered(raw)
    assert server.registrations() == []


async def test_an_unrecognized_elective_option_is_ignored_and_the_register_served(
    server: Lwm2mServer, raw: RawSocket
) -> None:
    raw.send(bytes((CON | 1, 0x02, 0x00, 0x2A)) + REGISTER + b"\xb1x")  # option 26

    answer = Message.decode(await raw.receive())

    assert (answer.code, answer.mid) == (Code.CREATED, 0x2A)
    assert [reg.endpoint for reg in server.registrations()] == ["crit"]
