"""Malformed requests get a CoAP error with a diagnostic (or the Reset RFC 7252 asks
for), and the server keeps serving the next request."""

from __future__ import annotations

import os

import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type

BAD_REGISTERS = [
    ("rd?lt=60", b"</3/0>", "4.00", b"ep"),
    ("rd?ep=", b"</3/0>", "4.00", b"ep"),
    ("rd?ep=x&lt=abc", b"</3/0>", "4.00", b"lt"),
    ("rd?ep=x&lt=0", b"</3/0>", "4.00", b"lt"),
    ("rd?ep=x&lt=-5", b"</3/0>", "4.00", b"lt"),
    ("rd?ep=x&lwm2m=one", b"</3/0>", "4.00", b"lwm2m"),
    ("rd?ep=x&lwm2m=2.0", b"</3/0>", "4.12", b"2.0"),
    ("rd?ep=x&b=XYZ", b"</3/0>", "4.00", b"b"),
    ("rd?ep=x&ep=y", b"</3/0>", "4.00", b"twice"),
    ("rd?ep=x", b"</3/0", "4.00", b"link-format"),
    ("rd?ep=x", b'</3/0>;rt="open', "4.00", b"link-format"),
    ("rd?ep=x", b"</3/a>", "4.00", b"/3/a"),
    ("rd?ep=x", b"</3/0/1/2/3>", "4.00", b"/3/0/1/2/3"),
    ("rd?ep=x", b"\xff\xfe</3/0>", "4.00", b"UTF-8"),
]


@pytest.mark.parametrize(("target", "payload", "code", "says"), BAD_REGISTERS)
async def test_a_malformed_register_is_a_client_error_with_a_diagnostic(
    server, coap, rd, target, payload, code, says
):
    response = await rd(coap, Code.POST, target, payload)

    assert response.code.dotted == code
    assert says in response.payload
    assert server.registrations() == []
    assert (await rd(coap, Code.POST, "rd?ep=after", b"</3/0>")).code == Code.CREATED


async def test_a_register_payload_in_another_content_format_is_unsupported(server, coap, rd):
    response = await rd(coap, Code.POST, "rd?ep=x", b"\x08\x00", content_format=11542)

    assert response.code == Code.UNSUPPORTED_CONTENT_FORMAT


@pytest.mark.parametrize("target", ["rd/unknown", "rd/unknown?lt=60", "rd/a/b"])
async def test_an_update_of_an_unknown_location_is_not_found(server, coap, rd, target):
    response = await rd(coap, Code.POST, target)

    assert response.code == Code.NOT_FOUND and b"registration" in response.payload


async def test_a_malformed_update_is_a_bad_request_and_changes_nothing(server, coap, rd):
    created = await rd(coap, Code.POST, "rd?ep=keep&lt=60", b"</3/0>")
    location = "/".join(created.opt.location_path)

    response = await rd(coap, Code.POST, f"{location}?lt=never", b"</5/0>")

    assert response.code == Code.BAD_REQUEST
    reg = server.registration("keep")
    assert reg is not None and (reg.lifetime, reg.object_links) == (60, ("/3/0",))


async def test_a_get_on_the_registration_interface_is_method_not_allowed(server, coap, rd):
    created = await rd(coap, Code.POST, "rd?ep=m", b"</3/0>")

    assert (await rd(coap, Code.GET, "rd")).code == Code.METHOD_NOT_ALLOWED
    location = "/".join(created.opt.location_path)
    assert (await rd(coap, Code.PUT, location)).code == Code.METHOD_NOT_ALLOWED


def _register_datagram(mid: int) -> bytes:
    message = Message(_mtype=Type.CON, _mid=mid, _token=b"\x01\x02", code=Code.POST,
                      uri_path=("rd",), uri_query=("ep=raw",), payload=b"</3/0>")
    return message.encode()


async def test_random_bytes_get_at_most_a_reset_or_error_and_the_server_keeps_serving(
    server, raw
):
    for size in range(1, 200, 3):
        raw.send(os.urandom(size))
    raw.send(b"\x00\x00\x00\x01garbage")  # version 0: silently ignored (RFC 7252 §3)

    raw.send(_register_datagram(0x4242))
    answer = Message.decode(await raw.receive())
    while answer.mid != 0x4242:
        # the odd random datagram is a well-formed request and gets a client error
        assert answer.mtype == Type.RST or answer.code.is_response(), answer
        assert answer.code != Code.INTERNAL_SERVER_ERROR
        answer = Message.decode(await raw.receive())

    assert answer.code == Code.CREATED


async def test_a_uri_path_that_is_not_utf_8_is_a_bad_option(server, raw):
    # CON POST, mid 0x0a0b, token "t", Uri-Path (11) of 2 bytes that are not UTF-8
    raw.send(bytes((0x41, 0x02, 0x0A, 0x0B)) + b"t" + bytes((0xB2, 0xFF, 0xFE)))

    answer = Message.decode(await raw.receive())

    assert (answer.mtype, answer.mid, answer.token) == (Type.ACK, 0x0A0B, b"t")
    assert answer.code == Code.BAD_OPTION


async def test_a_confirmable_with_truncated_options_is_reset(server, raw):
    # CON POST, mid 0x1234, then an option header announcing 10 bytes with only 2 present
    raw.send(bytes((0x40, 0x02, 0x12, 0x34, 0xBA, 0x72, 0x64)))
    reset = Message.decode(await raw.receive())

    assert reset.mtype == Type.RST and reset.mid == 0x1234
    raw.send(_register_datagram(0x1235))
    assert Message.decode(await raw.receive()).code == Code.CREATED


async def test_a_confirmable_with_a_too_long_token_length_is_reset(server, raw):
    raw.send(bytes((0x4F, 0x02, 0x00, 0x07)) + b"x" * 8)

    reset = Message.decode(await raw.receive())

    assert reset.mtype == Type.RST and reset.mid == 7


async def test_a_retransmitted_register_gets_the_same_answer_and_registers_once(
    server, raw, events
):
    raw.send(_register_datagram(0x0101))
    first = await raw.receive()
    raw.send(_register_datagram(0x0101))  # the same message id: a retransmission

    assert await raw.receive() == first
    assert len(server.registrations()) == 1
    await events.next()
    assert events.queue.empty()


async def test_an_unexpected_failure_is_answered_5_00_and_logged_and_serving_goes_on(
    coap, caplog
):
    from reconciler.lwm2m.server import Lwm2mServer

    def admit(endpoint: str) -> bool:
        if endpoint == "boom":
            raise RuntimeError("admission backend down")
        return True

    server = Lwm2mServer("127.0.0.1", 0, admit=admit)
    await server.start()
    try:
        base = f"coap://127.0.0.1:{server.port}/rd?ep="
        failed = await coap.request(Message(code=Code.POST, uri=base + "boom")).response
        fine = await coap.request(Message(code=Code.POST, uri=base + "fine")).response
    finally:
        await server.stop()

    assert failed.code == Code.INTERNAL_SERVER_ERROR and fine.code == Code.CREATED
    assert "admission backend down" in caplog.text
