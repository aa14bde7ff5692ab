"""Read, Write, Execute, Observe, Discover against a tiny in-test aiocoap device that
registered from its own socket; content-format negotiation and error translation."""

from __future__ import annotations

import asyncio

import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type

from reconciler.errors import DeviceNotRegistered, DeviceRequestFailed, DeviceTimeout
from reconciler.lwm2m.codecs import ContentFormat as CF
from reconciler.model.lwm2m import Path

FW_URI, FW_UPDATE, FW_VERSION = Path(5, 0, 1), Path(5, 0, 2), Path(3, 0, 3)


async def test_a_read_goes_from_the_server_socket_to_the_registered_address(
    server, make_device, enroll
):
    device = await make_device()
    await enroll(device, "ep=d1")

    values = await server.client("d1").read(FW_VERSION, timeout=5)

    assert values == {FW_VERSION: "1.0.0"}
    [(method, path, accept, source)] = device.seen
    assert (method, path, accept) == ("GET", "/3/0/3", CF.TLV)
    assert source[1] == server.port  # the server's own socket, not an ephemeral one


async def test_a_1_1_device_is_asked_for_senml_cbor_first(server, make_device, enroll):
    device = await make_device(formats=(CF.SENML_CBOR, CF.TLV))
    await enroll(device, "ep=d2&lwm2m=1.1")

    values = await server.client("d2").read(Path(3, 0), timeout=5)

    assert values[Path(3, 0, 0)] == "ACME" and values[FW_VERSION] == "1.0.0"
    assert [s[2] for s in device.seen] == [CF.SENML_CBOR]


async def test_a_not_acceptable_answer_falls_back_to_the_next_format_and_is_remembered(
    server, make_device, enroll
):
    device = await make_device(formats=(CF.TLV,))
    await enroll(device, "ep=d3&lwm2m=1.1")
    client = server.client("d3")

    first = await client.read(Path(5, 0), timeout=5)
    second = await client.read(Path(3, 0), timeout=5)

    assert first[Path(5, 0, 3)] == 0 and second[Path(3, 0, 0)] == "ACME"
    accepts = [s[2] for s in device.seen]
    assert accepts == [CF.SENML_CBOR, CF.SENML_JSON, CF.TLV, CF.TLV]


async def test_a_write_replaces_with_put_and_a_partial_update_uses_post(
    server, make_device, enroll
):
    device = await make_device()
    await enroll(device, "ep=d4")
    client = server.client("d4")

    await client.write(FW_URI, "coap://127.0.0.1:1/fw/abc", timeout=5)
    await client.write(Path(5, 0), {FW_URI: "coap://x/y"}, partial=True, timeout=5)

    assert device.values[FW_URI] == "coap://x/y"
    assert [(s[0], s[1], s[2]) for s in device.seen] == [
        ("PUT", "/5/0/1", CF.TLV), ("POST", "/5/0", CF.TLV)]


async def test_a_write_in_a_format_the_device_lacks_falls_back(server, make_device, enroll):
    device = await make_device(formats=(CF.TLV,))
    await enroll(device, "ep=d5&lwm2m=1.1")

    await server.client("d5").write(Path(5, 0), {FW_URI: "coap://a/b"}, partial=True,
                                    timeout=5)

    assert device.values[FW_URI] == "coap://a/b"
    assert [s[2] for s in device.seen] == [CF.SENML_CBOR, CF.SENML_JSON, CF.TLV]


async def test_execute_posts_the_arguments(server, make_device, enroll):
    device = await make_device()
    await enroll(device, "ep=d6")

    await server.client("d6").execute(FW_UPDATE, "0='now'", timeout=5)

    assert device.executed == [(FW_UPDATE, b"0='now'")]


async def test_an_error_answer_is_a_device_request_failed_with_the_code(
    server, make_device, enroll
):
    device = await make_device()
    await enroll(device, "ep=d7")

    with pytest.raises(DeviceRequestFailed) as failed:
        await server.client("d7").read(Path(4, 0), timeout=5)

    assert failed.value.code == "4.04" and failed.value.path == "/4/0"


async def test_discover_lists_the_links_under_a_path(server, make_device, enroll):
    device = await make_device()
    await enroll(device, "ep=d8")

    links = await server.client("d8").discover(Path(5, 0), timeout=5)

    assert links == ["/5/0/1", "/5/0/3", "/5/0/5"]


async def test_a_device_that_answers_discover_with_not_implemented_still_works(
    server, make_device, enroll
):
    device = await make_device(discover=False)
    await enroll(device, "ep=d9", links=b"</1/0>,</3/0>,</5/0>")
    client = server.client("d9")

    assert await client.discover(Path(5), timeout=5) == ["/5/0"]
    assert await client.read(FW_VERSION, timeout=5) == {FW_VERSION: "1.0.0"}


async def test_observe_delivers_the_first_value_and_each_notification_until_cancelled(
    server, make_device, enroll
):
    device = await make_device()
    await enroll(device, "ep=d10")
    seen: asyncio.Queue[dict[Path, object]] = asyncio.Queue()

    observation = await server.client("d10").observe(FW_VERSION, seen.put_nowait, timeout=5)
    device.set(FW_VERSION, "2.0.0")
    first, second = seen.get_nowait(), await asyncio.wait_for(seen.get(), 5)
    await observation.cancel()

    assert (first, second) == ({FW_VERSION: "1.0.0"}, {FW_VERSION: "2.0.0"})
    assert observation.initial == first and not observation.active
    device.set(FW_VERSION, "3.0.0")
    await server.client("d10").read(FW_VERSION, timeout=5)  # the notify would be here by now
    assert seen.empty()


async def test_a_notification_that_does_not_decode_is_dropped_and_observing_goes_on(
    server, make_device, enroll
):
    device = await make_device(formats=(CF.TLV,))
    await enroll(device, "ep=d11")
    seen: asyncio.Queue[dict[Path, object]] = asyncio.Queue()
    observation = await server.client("d11").observe(FW_VERSION, seen.put_nowait, timeout=5)

    device.break_next = 1
    device.set(FW_VERSION, "2.0.0")
    while device.break_next > 0:  # until the broken notification has gone out
        await asyncio.sleep(0)
    device.set(FW_VERSION, "3.0.0")
    notified = [seen.get_nowait(), await asyncio.wait_for(seen.get(), 5)]
    await observation.cancel()

    assert notified == [{FW_VERSION: "1.0.0"}, {FW_VERSION: "3.0.0"}]


@pytest.mark.parametrize(("version", "formats"), [
    ("1.0", (CF.TLV,)), ("1.1", (CF.SENML_CBOR,)), ("1.1", (CF.SENML_JSON,))])
async def test_a_read_answer_that_does_not_decode_is_a_clear_request_failure(
    server, make_device, enroll, version, formats
):
    device = await make_device(formats=formats, broken=True)
    await enroll(device, f"ep=bad-{formats[0]}&lwm2m={version}")

    with pytest.raises(DeviceRequestFailed) as failed:
        await server.client(f"bad-{formats[0]}").read(Path(3, 0), timeout=5)

    assert failed.value.code == "2.05" and "bad payload" in str(failed.value)


async def test_a_request_to_an_unregistered_endpoint_raises_not_registered(server):
    with pytest.raises(DeviceNotRegistered):
        await server.client("ghost").read(FW_VERSION, timeout=1)


async def test_a_device_that_never_answers_times_out(server, raw):
    register = Message(_mtype=Type.CON, _mid=1, _token=b"r", code=Code.POST,
                       uri_path=("rd",), uri_query=("ep=mute",), payload=b"</3/0>")
    raw.send(register.encode())
    assert Message.decode(await raw.receive()).code == Code.CREATED

    with pytest.raises(DeviceTimeout):
        await server.client("mute").read(FW_VERSION, timeout=0.3)

    request = Message.decode(await raw.receive())
    assert request.code == Code.GET and request.opt.uri_path == ("3", "0", "3")


async def test_stopping_the_server_ends_running_observations(server, make_device, enroll):
    device = await make_device()
    await enroll(device, "ep=d12")
    observation = await server.client("d12").observe(FW_VERSION, lambda values: None,
                                                     timeout=5)
    assert observation.active

    await server.stop()

    assert not observation.active


async def test_a_device_that_speaks_only_tlv_gets_writes_in_tlv_without_a_refusal_first(
    server, make_device, enroll
):
    """Writes use what was negotiated for reads, and what a write had to step down to."""
    device = await make_device(formats=(CF.TLV,))
    await enroll(device, "ep=d20&lwm2m=1.1")
    client = server.client("d20")
    await client.read(Path(5, 0), timeout=5)  # steps down to TLV once
    device.seen.clear()

    await client.write(Path(5, 0), {FW_URI: "coap://a/b"}, partial=True, timeout=5)

    assert [(s[0], s[2]) for s in device.seen] == [("POST", CF.TLV)]

    other = await make_device(formats=(CF.TLV,))
    await enroll(other, "ep=d21&lwm2m=1.1")
    for uri in ("coap://a/1", "coap://a/2"):
        await server.client("d21").write(Path(5, 0), {FW_URI: uri}, partial=True, timeout=5)
    assert [s[2] for s in other.seen] == [CF.SENML_CBOR, CF.SENML_JSON, CF.TLV, CF.TLV]


async def test_a_write_goes_first_in_the_format_the_device_registered(
    server, make_device, enroll
):
    device = await make_device(formats=(CF.TLV,))
    links = b'</>;rt="oma.lwm2m";ct=11542,</3/0>,</5/0>'
    await enroll(device, "ep=d22&lwm2m=1.2", links)

    await server.client("d22").write(Path(5, 0), {FW_URI: "coap://a/b"}, partial=True,
                                     timeout=5)

    assert [s[2] for s in device.seen] == [CF.TLV]
