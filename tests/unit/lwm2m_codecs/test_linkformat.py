"""CoRE Link Format (RFC 6690) as LwM2M Register, Update and Discover payloads use it."""

from __future__ import annotations

import pytest

from reconciler.lwm2m.codecs import CodecError, Link, format_link_format, parse_link_format
from reconciler.model.lwm2m import Path


def test_a_register_payload_with_a_root_link_parses_with_its_attributes() -> None:
    links = parse_link_format('</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>;ver=1.1,</5/0>')
    assert [link.target for link in links] == ["/", "/1/0", "/3/0", "/5/0"]
    assert links[0].get("rt") == "oma.lwm2m" and links[0].get("ct") == "11543"
    assert links[0].path is None and links[2].path == Path(3, 0)
    assert links[2].attributes == {"ver": "1.1"}


def test_a_discover_payload_keeps_valueless_and_quoted_parameters() -> None:
    text = '</3/0>;pmin=10;pmax=60,</3/0/1>,</3/0/6>;dim=2,</3/0/7>;title="a, b; \\"c\\"";obs'
    links = parse_link_format(text)
    assert links[1] == Link("/3/0/1")
    assert links[2].get("dim") == "2"
    assert links[3].get("title") == 'a, b; "c"'
    assert links[3].has("obs") and links[3].get("obs") is None


def test_whitespace_and_line_breaks_between_links_are_tolerated() -> None:
    assert parse_link_format(" </1/0> ,\n</3/0> ; ver=1.0 ") == [
        Link("/1/0"),
        Link("/3/0", (("ver", "1.0"),)),
    ]


def test_an_empty_payload_has_no_links() -> None:
    assert parse_link_format("") == []


def test_formatting_then_parsing_gives_the_same_links() -> None:
    links = [
        Link("/", (("rt", "oma.lwm2m"), ("ct", "110 112"))),
        Link("/3/0", (("ver", "1.1"), ("obs", None))),
        Link("/5/0/1", (("title", 'say "hi"'),)),
    ]
    text = format_link_format(links)
    assert text.startswith('</>;rt="oma.lwm2m";ct="110 112",</3/0>;ver=1.1;obs,')
    assert parse_link_format(text) == links


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/1/0", "expected '<'"),
        ("</1/0", "unterminated"),
        ("</1/0>;", "expected a parameter name"),
        ("</1/0>;ver=", "has no value"),
        ('</1/0>;rt="open', "expected '\"'"),
        ("</1/0></3/0>", "expected ','"),
        ("</1 0>", "bad target"),
    ],
)
def test_malformed_link_format_names_the_problem_and_position(text: str, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        parse_link_format(text)
