"""Send (`POST /dp`, LwM2M 1.1/1.2 Information Reporting) over real CoAP on loopback:
values reach the subscribers by endpoint, every bad Send gets a CoAP error with a
diagnostic, and the server keeps serving."""

from __future__ import annotations

import asyncio
import json

import cbor2
import pytest
from aiocoap import Context, Message
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type

from reconciler.lwm2m.codecs import Value
from reconciler.model.lwm2m import Path

SENML_JSON, SENML_CBOR, LWM2M_CBOR, TLV = 110, 112, 11544, 11542

GOOD_JSON = json.dumps([
    {"bn": "/3/0/", "bt": 1700000000, "n": "0", "vs": "ACME"},
    {"n": "9", "v": 87, "t": 5},
    {"n": "7/1", "v": 3300},
    {"bn": "/5/0/", "n": "3", "v": 2},
    {"n": "1", "vs": "coap://127.0.0.1/fw"},
]).encode()
GOOD_JSON_VALUES: dict[Path, Value] = {
    Path(3, 0, 0): "ACME", Path(3, 0, 9): 87, Path(3, 0, 7, 1): 3300,
    Path(5, 0, 3): 2, Path(5, 0, 1): "coap://127.0.0.1/fw"}


class Sends:
    """Collects Sends as the server delivers them; `next()` awaits the next one."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, dict[Path, Value]]] = asyncio.Queue()

    def __call__(self, endpoint: str, values: dict[Path, Value]) -> None:
        self.queue.put_nowait((endpoint, values))

    async def next(self) -> tuple[str, dict[Path, Value]]:
        return await asyncio.wait_for(self.queue.get(), 5)


@pytest.fixture
def sends(server) -> Sends:
    collected = Sends()
    server.subscribe_send(collected)
    return collected


async def send(ctx: Context, server, payload: bytes, content_format: int | None) -> Message:
    message = Message(code=Code.POST, uri=f"coap://127.0.0.1:{server.port}/dp",
                      payload=payload)
    if content_format is not None:
        message.opt.content_format = content_format
    response: Message = await asyncio.wait_for(ctx.request(message).response, 5)
    return response


@pytest.fixture
async def registered(server, coap, rd) -> Context:
    """The `coap` context registered as endpoint `dev` (LwM2M 1.1, Objects 1, 3, 5)."""
    created = await rd(coap, Code.POST, "rd?ep=dev&lwm2m=1.1", b"</1/0>,</3/0>,</5/0>")
    assert created.code == Code.CREATED
    return coap


async def assert_still_serving(server, ctx: Context, sends: Sends) -> None:
    """A good Send after a bad one is delivered, and is the next thing delivered: the bad
    one reached no subscriber."""
    response = await send(ctx, server, GOOD_JSON, SENML_JSON)
    assert response.code == Code.CHANGED
    assert await sends.next() == ("dev", GOOD_JSON_VALUES)


async def test_a_senml_json_send_reaches_the_subscriber_with_full_paths_and_typed_values(
    server, registered, sends
):
    response = await send(registered, server, GOOD_JSON, SENML_JSON)

    assert response.code == Code.CHANGED
    assert await sends.next() == ("dev", GOOD_JSON_VALUES)


async def test_a_senml_cbor_send_with_numeric_labels_reaches_the_subscriber(
    server, registered, sends
):
    payload = cbor2.dumps([
        {-2: "/3/0/", 0: "3", 3: "2.1.0"},
        {0: "13", 2: 1700000123},
        {-2: "/5/0/", 0: "5", 2: 1},
        {0: "0", 8: b"\x00\xff\x10"},
        {-2: "/1/0/1", 2: 300},
    ])

    response = await send(registered, server, payload, SENML_CBOR)

    assert response.code == Code.CHANGED
    assert await sends.next() == ("dev", {
        Path(3, 0, 3): "2.1.0", Path(3, 0, 13): 1700000123, Path(5, 0, 5): 1,
        Path(5, 0, 0): b"\x00\xff\x10", Path(1, 0, 1): 300})


async def test_a_time_series_keeps_the_last_value_of_each_path(server, registered, sends):
    payload = json.dumps([{"bn": "/3/0/9", "t": 1, "v": 90}, {"t": 2, "v": 80}]).encode()

    assert (await send(registered, server, payload, SENML_JSON)).code == Code.CHANGED
    assert await sends.next() == ("dev", {Path(3, 0, 9): 80})


async def test_a_client_registered_with_lwm2m_1_0_may_send_too(server, coap, rd, sends):
    await rd(coap, Code.POST, "rd?ep=old", b"</3/0>,</5/0>")

    response = await send(coap, server, b'[{"n":"/5/0/3","v":1}]', SENML_JSON)

    assert response.code == Code.CHANGED
    assert await sends.next() == ("old", {Path(5, 0, 3): 1})


async def test_a_send_from_an_address_with_no_registration_is_not_found(
    server, registered, sends
):
    stranger = await Context.create_client_context(transports=["udp6"])
    try:
        response = await send(stranger, server, GOOD_JSON, SENML_JSON)
    finally:
        await stranger.shutdown()

    assert response.code == Code.NOT_FOUND
    assert b"no registration from 127.0.0.1:" in response.payload
    await assert_still_serving(server, registered, sends)


async def test_a_send_after_de_registration_is_not_found(server, coap, rd, sends):
    created = await rd(coap, Code.POST, "rd?ep=gone", b"</3/0>")
    await rd(coap, Code.DELETE, "/".join(created.opt.location_path))

    response = await send(coap, server, b'[{"n":"/3/0/9","v":1}]', SENML_JSON)

    assert response.code == Code.NOT_FOUND and b"Register" in response.payload


async def test_a_send_after_the_registration_expired_is_not_found(
    server, coap, rd, clock, sends
):
    await rd(coap, Code.POST, "rd?ep=late&lt=60", b"</3/0>")
    clock.now += 61

    response = await send(coap, server, b'[{"n":"/3/0/9","v":1}]', SENML_JSON)

    assert response.code == Code.NOT_FOUND


async def test_a_value_of_an_object_the_device_did_not_register_is_not_found(
    server, registered, sends
):
    payload = b'[{"n":"/3/0/9","v":1},{"n":"/4/0/2","v":-70}]'

    response = await send(registered, server, payload, SENML_JSON)

    assert response.code == Code.NOT_FOUND
    assert b"Object(s) 4 not registered by dev" in response.payload
    await assert_still_serving(server, registered, sends)


BAD_JSON = [
    (b"[{\"n\":\"/3/0/9\",\"v\":1}", b"does not parse"),
    (b"\xff\xfe[]", b"does not parse"),
    (b'{"n":"/3/0/9","v":1}', b"array of records"),
    (b'[["/3/0/9",1]]', b"record 0 is not a map"),
    (b'[{"n":"/3/0/9"}]', b"needs exactly one value field"),
    (b'[{"n":"/3/0/9","v":1,"vs":"1"}]', b"needs exactly one value field"),
    (b'[{"n":"3/0/9","v":1}]', b"not a full path"),
    (b'[{"bn":"/3/0/","n":"x","v":1}]', b"not an LwM2M path"),
    (b'[{"n":"/3/0","v":1}]', b"names no resource"),
    (b'[{"n":"/3/70000/9","v":1}]', b"out of range"),
    (b'[{"n":9,"v":1}]', b"n must be text"),
    (b'[{"n":"/3/0/9","vs":"full"}]', b"record 0: /3/0/9: expected an integer"),
    (b'[{"n":"/3/0/0","v":true}]', b"record 0: /3/0/0: v has the wrong kind"),
    (b"[]", b"no resource values"),
    (b"", b"without a payload"),
]


@pytest.mark.parametrize(("payload", "says"), BAD_JSON)
async def test_a_malformed_senml_json_send_is_a_bad_request_with_a_diagnostic(
    server, registered, sends, payload, says
):
    response = await send(registered, server, payload, SENML_JSON)

    assert response.code == Code.BAD_REQUEST
    assert says in response.payload, response.payload
    await assert_still_serving(server, registered, sends)


GOOD_CBOR = cbor2.dumps([{-2: "/3/0/", 0: "9", 2: 50}, {0: "0", 3: "ACME"}])
BAD_CBOR = [
    (GOOD_CBOR[:-3], b"does not parse"),
    (GOOD_CBOR[:1], b"does not parse"),
    (GOOD_CBOR + b"\x00", b"1 bytes after"),
    (b"\xff", b"does not parse"),
    (cbor2.dumps({0: "/3/0/9", 2: 1}), b"array of records"),
    (cbor2.dumps([{0: "/3/0/9", 3: 5}]), b"record 0: /3/0/9: vs has the wrong kind"),
    (cbor2.dumps([{0: "/3/0/0", 8: "not bytes"}]), b"vd has the wrong kind"),
    (cbor2.dumps([{0: b"/3/0/9", 2: 1}]), b"n must be text"),
]


@pytest.mark.parametrize(("payload", "says"), BAD_CBOR)
async def test_truncated_or_malformed_senml_cbor_is_a_bad_request_with_a_diagnostic(
    server, registered, sends, payload, says
):
    response = await send(registered, server, payload, SENML_CBOR)

    assert response.code == Code.BAD_REQUEST
    assert says in response.payload, response.payload
    await assert_still_serving(server, registered, sends)


@pytest.mark.parametrize("content_format", [LWM2M_CBOR, TLV, 0, 11543, None])
async def test_a_send_in_another_content_format_is_unsupported(
    server, registered, sends, content_format
):
    payload = GOOD_CBOR if content_format == LWM2M_CBOR else GOOD_JSON

    response = await send(registered, server, payload, content_format)

    assert response.code == Code.UNSUPPORTED_CONTENT_FORMAT
    assert b"SenML JSON (110) or SenML CBOR (112)" in response.payload
    await assert_still_serving(server, registered, sends)


async def test_dp_takes_only_post(server, registered, rd, sends):
    assert (await rd(registered, Code.GET, "dp")).code == Code.METHOD_NOT_ALLOWED
    assert (await rd(registered, Code.PUT, "dp", GOOD_JSON, SENML_JSON)).code == (
        Code.METHOD_NOT_ALLOWED)
    await assert_still_serving(server, registered, sends)


async def test_a_failing_subscriber_is_logged_and_the_others_still_get_the_send(
    server, registered, sends, caplog
):
    def broken(endpoint: str, values: dict[Path, Value]) -> None:
        raise RuntimeError("subscriber exploded")

    server.subscribe_send(broken)
    second = Sends()
    server.subscribe_send(second)

    response = await send(registered, server, GOOD_JSON, SENML_JSON)

    assert response.code == Code.CHANGED
    assert await sends.next() == await second.next() == ("dev", GOOD_JSON_VALUES)
    assert "subscriber exploded" in caplog.text


async def test_an_unsubscribed_callback_gets_no_more_sends(server, registered, sends):
    dropped = Sends()
    unsubscribe = server.subscribe_send(dropped)
    unsubscribe()

    await assert_still_serving(server, registered, sends)

    assert dropped.queue.empty()


async def test_the_send_is_attributed_to_the_endpoint_that_registered_from_that_address(
    server, coap, rd, sends
):
    # one source address, two registrations: the one that spoke from it last owns it
    await rd(coap, Code.POST, "rd?ep=first", b"</3/0>")
    await rd(coap, Code.POST, "rd?ep=second", b"</3/0>")
    body = b'[{"n":"/3/0/9","v":7}]'

    assert (await send(coap, server, body, SENML_JSON)).code == Code.CHANGED
    assert (await sends.next())[0] == "second"

    second = server.registration("second")
    await rd(coap, Code.DELETE, f"rd/{second.registration_id}")
    assert (await send(coap, server, body, SENML_JSON)).code == Code.CHANGED
    assert (await sends.next())[0] == "first"


def _send_datagram(mid: int) -> bytes:
    message = Message(_mtype=Type.CON, _mid=mid, _token=b"\x05", code=Code.POST,
                      uri_path=("dp",), payload=b'[{"n":"/3/0/9","v":42}]',
                      content_format=SENML_JSON)
    return message.encode()


async def test_a_retransmitted_send_is_answered_again_and_delivered_once(server, raw, sends):
    register = Message(_mtype=Type.CON, _mid=1, _token=b"\x01", code=Code.POST,
                       uri_path=("rd",), uri_query=("ep=raw", "lwm2m=1.1"),
                       payload=b"</3/0>", content_format=40)
    raw.send(register.encode())
    assert Message.decode(await raw.receive()).code == Code.CREATED

    raw.send(_send_datagram(2))
    first = await raw.receive()
    raw.send(_send_datagram(2))  # the same message id: a retransmission

    assert await raw.receive() == first
    assert Message.decode(first).code == Code.CHANGED
    assert await sends.next() == ("raw", {Path(3, 0, 9): 42})
    raw.send(_send_datagram(3))
    assert Message.decode(await raw.receive()).code == Code.CHANGED
    assert await sends.next() == ("raw", {Path(3, 0, 9): 42})
    assert sends.queue.empty()


async def test_a_send_wakes_a_sleeping_queue_mode_device_and_releases_held_requests(
    server, clock, make_device, enroll, sends
):
    device = await make_device()
    await enroll(device, "ep=sleeper&lwm2m=1.1&Q")
    clock.now += 31
    assert not server.is_awake("sleeper")
    read = asyncio.create_task(server.client("sleeper").read(Path(3, 0, 3), timeout=5))
    while server.queue.held("sleeper") == 0:
        await asyncio.sleep(0)

    response = await send(device.context, server, b'[{"n":"/3/0/9","v":5}]', SENML_JSON)

    assert response.code == Code.CHANGED
    assert await sends.next() == ("sleeper", {Path(3, 0, 9): 5})
    assert await asyncio.wait_for(read, 5) == {Path(3, 0, 3): "1.0.0"}
    assert server.is_awake("sleeper")
