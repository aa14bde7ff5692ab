"""Register/Update query and payload parsing (pure): defaults, versions, bindings,
root links, and a Rejected with the right CoAP code for every malformed input."""

from __future__ import annotations

import pytest

from reconciler.lwm2m.rd_parsing import (
    Rejected,
    parse_object_links,
    parse_register,
    parse_update,
    split_query,
)


def register(query: list[str], payload: bytes = b"</3/0>", cf: int | None = 40):
    return parse_register(split_query(query), payload, cf)


def test_a_bare_register_gets_the_defaults_of_the_specification():
    params = register(["ep=a"])

    assert (params.lifetime, params.lwm2m_version, params.binding, params.queue_mode) == (
        86400, "1.0", "U", False)
    assert params.object_links == ("/3/0",)


@pytest.mark.parametrize(("query", "binding", "queue"), [
    (["ep=a", "b=UQ"], "U", True),
    (["ep=a", "b=U", "lwm2m=1.1", "Q"], "U", True),
    (["ep=a", "lwm2m=1.2", "Q"], "U", True),
    (["ep=a", "b=UQS"], "US", True),
    (["ep=a", "b=S"], "S", False),
    (["ep=a", "lwm2m=1.1", "b=UT"], "UT", False),
])
def test_queue_mode_comes_from_uq_or_the_q_parameter(query, binding, queue):
    params = register(query)

    assert (params.binding, params.queue_mode) == (binding, queue)


def test_a_patch_level_version_is_kept_as_major_minor():
    assert register(["ep=a", "lwm2m=1.1.1"]).lwm2m_version == "1.1"


def test_the_root_link_is_dropped_and_its_content_format_kept():
    links, ct = parse_object_links(b'</>;rt="oma.lwm2m";ct="60 110",</1>;ver=1.1,</1/0>', 40)

    assert (links, ct) == (("/1", "/1/0"), 60)


def test_an_alternate_root_path_prefixes_the_object_links():
    links, ct = parse_object_links(b'</lwm2m>;rt="oma.lwm2m";ct=11543,</lwm2m/3/0>', None)

    assert (links, ct) == (("/3/0",), 11543)


def test_an_empty_payload_registers_no_objects():
    assert register(["ep=a"], b"").object_links == ()


def test_whitespace_between_links_is_tolerated():
    assert register(["ep=a"], b"</1/0>, </3/0>").object_links == ("/1/0", "/3/0")


@pytest.mark.parametrize(("query", "payload", "cf", "code"), [
    ([], b"</3/0>", 40, "4.00"),
    (["ep="], b"</3/0>", 40, "4.00"),
    (["ep=" + "x" * 256], b"</3/0>", 40, "4.00"),
    (["ep=a", "lt="], b"</3/0>", 40, "4.00"),
    (["ep=a", "lt=1.5"], b"</3/0>", 40, "4.00"),
    (["ep=a", "lt=4294967296"], b"</3/0>", 40, "4.00"),
    (["ep=a", "lwm2m"], b"</3/0>", 40, "4.00"),
    (["ep=a", "lwm2m=3.0"], b"</3/0>", 40, "4.12"),
    (["ep=a", "b=UU"], b"</3/0>", 40, "4.00"),
    (["ep=a", "b="], b"</3/0>", 40, "4.00"),
    (["ep=a"], b"</3/0>", 112, "4.15"),
    (["ep=a"], b"<3/0", 40, "4.00"),
    (["ep=a"], b"</3/0>junk", 40, "4.00"),
    (["ep=a"], b"</3/70000>", 40, "4.00"),
    (["ep=a"], b"</x>", 40, "4.00"),
    (["ep=a"], b"\xc3\x28", 40, "4.00"),
])
def test_malformed_register_input_is_rejected_with_a_code_and_a_reason(query, payload, cf,
                                                                       code):
    with pytest.raises(Rejected) as rejected:
        register(query, payload, cf)

    assert rejected.value.code == code and rejected.value.message


def test_a_parameter_given_twice_is_rejected():
    with pytest.raises(Rejected, match="twice"):
        split_query(["ep=a", "ep=b"])


def test_an_update_changes_only_what_it_carries():
    params = parse_update(split_query(["lt=30"]), b"", None)

    assert (params.lifetime, params.binding, params.queue_mode, params.object_links) == (
        30, None, None, None)


def test_an_update_with_a_binding_and_links_carries_both():
    params = parse_update(split_query(["b=UQ"]), b"</5/0>", 40)

    assert (params.binding, params.queue_mode, params.object_links) == ("U", True, ("/5/0",))


def test_a_malformed_update_lifetime_is_rejected():
    with pytest.raises(Rejected):
        parse_update(split_query(["lt=-1"]), b"", None)
