"""Reads, Discover, Writes, Execute and Observe on a simulated device, by the spec."""

from __future__ import annotations

from typing import Any

import aiocoap
import pytest

from reconciler.lwm2m.codecs import ContentFormat, decode, encode, parse_link_format
from reconciler.model.lwm2m import Path
from reconciler.simulator import DeviceSpec


@pytest.mark.parametrize("fmt", [ContentFormat.TLV, ContentFormat.SENML_JSON,
                                 ContentFormat.SENML_CBOR])
async def test_object_3_and_5_are_read_in_tlv_and_senml(
        server: Any, launch: Any, fmt: ContentFormat) -> None:
    await launch(DeviceSpec("r", version="3.1.4"))
    device = await server.request("r", aiocoap.GET, "/3/0", accept=int(fmt))
    firmware = await server.request("r", aiocoap.GET, "/5", accept=int(fmt))
    assert device.code == firmware.code == aiocoap.CONTENT
    assert int(device.opt.content_format) == fmt
    values = decode(int(fmt), Path(3, 0), device.payload)
    assert values[Path(3, 0, 3)] == "3.1.4"
    assert values[Path(3, 0, 2)] == "SN-r"
    fw = decode(int(fmt), Path(5), firmware.payload)
    assert fw[Path(5, 0, 3)] == 0 and fw[Path(5, 0, 5)] == 0
    assert fw[Path(5, 0, 8, 0)] == 0  # protocol support: CoAP
    assert Path(5, 0, 0) not in fw  # Package is write-only


async def test_a_single_resource_reads_as_plain_text_by_default(server: Any, launch: Any) -> None:
    await launch(DeviceSpec("t", version="9.9"))
    answer = await server.request("t", aiocoap.GET, "/3/0/3")
    assert answer.opt.content_format == ContentFormat.TEXT
    assert answer.payload == b"9.9"


@pytest.mark.parametrize(("version", "path", "accept"), [
    ("1.1", "/3/0", ContentFormat.TEXT),  # text carries one resource only
    ("1.1", "/3/0/3", ContentFormat.LWM2M_JSON),  # not implemented by this client
    ("1.0", "/3/0", ContentFormat.SENML_JSON),  # SenML arrived with 1.1
    ("1.1", "/3/0/3", ContentFormat.OPAQUE),  # a string resource is not opaque
])
async def test_an_unsupported_accept_gets_4_06(
        server: Any, launch: Any, version: str, path: str, accept: int) -> None:
    await launch(DeviceSpec("n", lwm2m_version=version))
    answer = await server.request("n", aiocoap.GET, path, accept=int(accept))
    assert answer.code == aiocoap.NOT_ACCEPTABLE


@pytest.mark.parametrize(("code", "path", "expected"), [
    (aiocoap.GET, "/4/0", aiocoap.NOT_FOUND),
    (aiocoap.GET, "/3/1", aiocoap.NOT_FOUND),
    (aiocoap.GET, "/5/0/0", aiocoap.METHOD_NOT_ALLOWED),
    (aiocoap.POST, "/3/0/3", aiocoap.METHOD_NOT_ALLOWED),
    (aiocoap.DELETE, "/5/0", aiocoap.METHOD_NOT_ALLOWED),
    (aiocoap.POST, "/5", aiocoap.METHOD_NOT_ALLOWED),
    (aiocoap.POST, "/5/0/2", aiocoap.METHOD_NOT_ALLOWED),  # Update while Idle
    (aiocoap.GET, "/abc", aiocoap.NOT_FOUND),  # not an LwM2M path
    (aiocoap.PUT, "/5", aiocoap.METHOD_NOT_ALLOWED),  # Write on an Object
    (aiocoap.PUT, "/5/0/1", aiocoap.BAD_REQUEST),  # a Write without a Content-Format
])
async def test_wrong_targets_and_operations_get_the_spec_error_codes(
        server: Any, launch: Any, code: aiocoap.Code, path: str,
        expected: aiocoap.Code) -> None:
    await launch(DeviceSpec("e"))
    answer = await server.request("e", code, path)
    assert answer.code == expected


async def test_discover_lists_object_5_resources_with_write_attributes(
        server: Any, launch: Any) -> None:
    await launch(DeviceSpec("d"))
    attrs = await server.request("d", aiocoap.PUT, "/5/0/3", uri_query=("pmin=1", "pmax=60"))
    assert attrs.code == aiocoap.CHANGED
    answer = await server.request("d", aiocoap.GET, "/5/0",
                                  accept=int(ContentFormat.LINK_FORMAT))
    assert answer.code == aiocoap.CONTENT
    links = {str(link.path) for link in parse_link_format(answer.payload.decode())}
    assert links >= {"/5/0", "/5/0/0", "/5/0/1", "/5/0/2", "/5/0/3", "/5/0/5",
                          "/5/0/8", "/5/0/9"}
    assert answer.payload.decode().count("</5/0/3>;pmin=1;pmax=60") == 1


async def test_write_attributes_with_an_unknown_attribute_get_4_00_and_set_nothing(
        server: Any, launch: Any) -> None:
    fleet = await launch(DeviceSpec("u"))
    answer = await server.request("u", aiocoap.PUT, "/5/0/3", uri_query=("pmin=1", "color=red"))
    assert answer.code == aiocoap.BAD_REQUEST and b"color" in answer.payload
    assert fleet.device("u").attributes == {}


async def test_a_write_in_an_unknown_format_gets_4_15_and_garbage_gets_4_00(
        server: Any, launch: Any) -> None:
    await launch(DeviceSpec("w", lwm2m_version="1.0"))
    senml = await server.request("w", aiocoap.PUT, "/5/0/1", payload=b"[]",
                                 content_format=int(ContentFormat.SENML_JSON))
    assert senml.code == aiocoap.UNSUPPORTED_CONTENT_FORMAT
    garbage = await server.request("w", aiocoap.PUT, "/5/0", payload=b"\xff\x01",
                                   content_format=int(ContentFormat.TLV))
    assert garbage.code == aiocoap.BAD_REQUEST
    read_only = await server.request(
        "w", aiocoap.PUT, "/3/0/3", payload=b"x", content_format=int(ContentFormat.TEXT))
    assert read_only.code == aiocoap.METHOD_NOT_ALLOWED


async def test_a_partial_write_in_tlv_sets_the_package_uri(server: Any, launch: Any) -> None:
    fleet = await launch(DeviceSpec("p"))
    payload = encode(int(ContentFormat.TLV), Path(5, 0), {Path(5, 0, 1): "ftp://nowhere/x"})
    answer = await server.request("p", aiocoap.POST, "/5/0", payload=payload,
                                  content_format=int(ContentFormat.TLV))
    assert answer.code == aiocoap.CHANGED
    device = fleet.device("p")
    assert (device.fw.package_uri, int(device.result)) == ("ftp://nowhere/x", 7)


async def test_observe_notifies_state_changes_and_a_reset_would_end_it(
        server: Any, launch: Any) -> None:
    fleet = await launch(DeviceSpec("o"))
    request = aiocoap.Message(code=aiocoap.GET, observe=0,
                              uri=f"coap://{server.reg('o').hostinfo}/5/0/5",
                              accept=int(ContentFormat.TEXT))
    observed = server.ctx.request(request)
    first = await observed.response
    assert first.payload == b"0" and first.opt.observe is not None
    notifications = observed.observation.__aiter__()
    await server.request("o", aiocoap.PUT, "/5/0/1", payload=b"coaps://x/y",
                         content_format=int(ContentFormat.TEXT))
    changed = await notifications.__anext__()
    assert changed.payload == b"9"  # unsupported protocol: only plain CoAP is offered
    assert len(fleet.device("o").observers) == 1
    observed.observation.cancel()


async def test_rebooting_through_object_3_abandons_a_download_and_comes_back_idle(
        server: Any, launch: Any) -> None:
    from reconciler.simulator import Fault, make_package

    fleet = await launch(DeviceSpec("rb", faults=frozenset({Fault.SLOW})))
    uri = server.offer("rb-pkg", make_package("2", bytes(4096)))
    await server.request("rb", aiocoap.PUT, "/5/0/1", payload=uri.encode(),
                         content_format=int(ContentFormat.TEXT))
    assert (await server.request("rb", aiocoap.POST, "/3/0/4")).code == aiocoap.CHANGED
    await server.wait_event("register", "rb", count=2)
    device = fleet.device("rb")
    assert (device.state, device.version, device.reboots) == (0, "1.0.0", 1)
