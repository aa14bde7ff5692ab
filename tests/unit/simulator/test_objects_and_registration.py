"""Resource table, format negotiation, Discover links and Register messages: pure."""

from __future__ import annotations

import pytest

from reconciler.lwm2m.codecs import ContentFormat
from reconciler.model.lwm2m import Path
from reconciler.simulator import objects, register_messages
from reconciler.simulator.transfer import PushReceiver, size_exponent

TEXT, TLV, CBOR, OPAQUE = (ContentFormat.TEXT, ContentFormat.TLV, ContentFormat.SENML_CBOR,
                           ContentFormat.OPAQUE)


@pytest.mark.parametrize(("accept", "path", "version", "expected"), [
    (None, Path(3, 0, 3), "1.1", TEXT),
    (None, Path(3, 0), "1.0", TLV),
    (None, Path(3, 0), "1.2", CBOR),
    (None, Path(5, 0, 8), "1.1", TLV),  # multiple-instance resource: not text
    (TEXT, Path(5, 0, 8, 0), "1.1", TEXT),
    (TEXT, Path(5, 0, 8), "1.1", None),
    (CBOR, Path(5, 0), "1.0", None),
    (OPAQUE, Path(5, 0, 3), "1.1", None),
    (ContentFormat.LWM2M_JSON, Path(3), "1.0", None),
])
def test_the_read_format_follows_accept_and_the_lwm2m_version(
        accept: int | None, path: Path, version: str, expected: int | None) -> None:
    assert objects.negotiate(accept, path, version) == expected


@pytest.mark.parametrize(("path", "exists"), [
    (Path(3), True), (Path(5, 0), True), (Path(5, 0, 9), True), (Path(5, 1), False),
    (Path(4, 0), False), (Path(3, 0, 5), False), (Path(3, 0, 3, 0), False),
    (Path(5, 0, 8, 0), True),
])
def test_exists_knows_the_simulated_objects(path: Path, exists: bool) -> None:
    assert objects.exists(path) is exists


def test_select_takes_the_values_under_a_path() -> None:
    values = objects.snapshot(objects.DeviceInfo(firmware_version="7"),
                              objects.FirmwareObject(), now=0)
    assert objects.select(values, Path(3, 0, 3)) == {Path(3, 0, 3): "7"}
    assert set(objects.select(values, Path(5, 0, 8))) == {Path(5, 0, 8, 0)}


def test_discover_on_an_object_lists_instance_and_resources() -> None:
    links = objects.discover(Path(5), {Path(5, 0, 3): "pmin=10"}).split(",")
    assert links[:3] == ["</5>", "</5/0>", "</5/0/0>"]
    assert "</5/0/3>;pmin=10" in links and "</5/0/8>;dim=1" in links


@pytest.mark.parametrize(("version", "queue", "query", "root"), [
    ("1.0", False, ("ep=e", "lt=60", "lwm2m=1.0", "b=U"), "ct=11542"),
    ("1.0", True, ("ep=e", "lt=60", "lwm2m=1.0", "b=UQ"), "ct=11542"),
    ("1.1", True, ("ep=e", "lt=60", "lwm2m=1.1", "b=U", "Q"), "ct=11542"),
    ("1.2", False, ("ep=e", "lt=60", "lwm2m=1.2", "b=U"), 'ct="112 110 11542"'),
])
def test_register_carries_the_version_binding_and_links(
        version: str, queue: bool, query: tuple[str, ...], root: str) -> None:
    message = register_messages.register_message("e", 60, version, queue)
    assert message.opt.uri_path == ("rd",)
    assert message.opt.uri_query == query
    assert message.opt.content_format == ContentFormat.LINK_FORMAT
    assert message.payload.decode() == f'</>;rt="oma.lwm2m";{root},</1/0>,</3/0>,</5/0>'


def test_update_and_deregister_address_the_location() -> None:
    update = register_messages.update_message(("rd", "7f"))
    assert (update.opt.uri_path, update.opt.uri_query, update.payload) == (("rd", "7f"), (), b"")
    assert register_messages.update_message(("rd", "7f"), lifetime=90).opt.uri_query == ("lt=90",)
    assert register_messages.deregister_message(("rd", "7f")).opt.uri_path == ("rd", "7f")


def test_push_blocks_must_arrive_in_order_and_fit_in_flash() -> None:
    receiver = PushReceiver(flash_size=40)
    assert receiver.receive(0, True, 0, b"a" * 16).dotted == "2.31"
    assert receiver.receive(2, True, 0, b"c" * 16).dotted == "4.08"  # block 1 skipped
    assert receiver.receive(1, True, 0, b"b" * 16).dotted == "2.31"
    assert receiver.receive(2, False, 0, b"c" * 16).dotted == "4.13"  # 48 > 40 bytes
    assert receiver.receive(0, False, 0, b"tiny").dotted == "2.04"
    assert bytes(receiver.data) == b"tiny"


def test_a_push_resumes_at_a_block_already_taken_or_the_next_one() -> None:
    receiver = PushReceiver(flash_size=100)
    assert receiver.receive(0, True, 0, b"a" * 16).dotted == "2.31"
    assert receiver.receive(1, True, 0, b"b" * 16).dotted == "2.31"
    # the 2.31 of block 1 was lost: the server sends it again, then goes on
    assert receiver.receive(1, True, 0, b"B" * 16).dotted == "2.31"
    assert receiver.receive(2, False, 0, b"c" * 4).dotted == "2.04"
    assert bytes(receiver.data) == b"a" * 16 + b"B" * 16 + b"c" * 4


def test_a_partial_push_is_let_go_after_a_while_and_then_answered_4_08() -> None:
    now = [0.0]
    receiver = PushReceiver(flash_size=100, keep=10.0, clock=lambda: now[0])
    assert receiver.receive(0, True, 0, b"a" * 16).dotted == "2.31"
    now[0] = 9.0
    assert receiver.receive(1, True, 0, b"b" * 16).dotted == "2.31"  # kept 9 s
    now[0] = 19.5
    assert receiver.receive(2, True, 0, b"c" * 16).dotted == "4.08"  # let go after 10 s
    assert not receiver.active and receiver.data == bytearray()
    assert receiver.receive(2, True, 0, b"c" * 16).dotted == "4.08"  # nothing to continue
    assert receiver.receive(0, True, 0, b"a" * 16).dotted == "2.31"  # a new push begins


def test_block_sizes_are_powers_of_two_from_16_to_1024() -> None:
    assert [size_exponent(s) for s in (16, 512, 1024)] == [0, 5, 6]
    with pytest.raises(ValueError, match="power of two"):
        size_exponent(100)
