"""Plain text (0), opaque (42) and the LwM2M 1.0 JSON (11543) codecs."""

from __future__ import annotations

import pytest

from reconciler.lwm2m.codecs import CodecError, ContentFormat, decode, encode
from reconciler.model.lwm2m import Path

from .vectors import DEVICE_LWM2M_JSON, DEVICE_VALUES

TEXT, OPAQUE, OLD_JSON = ContentFormat.TEXT, ContentFormat.OPAQUE, ContentFormat.LWM2M_JSON


@pytest.mark.parametrize(
    ("path", "text", "value"),
    [
        (Path(3, 0, 0), b"Open Mobile Alliance", "Open Mobile Alliance"),
        (Path(3, 0, 9), b"100", 100),
        (Path(3, 0, 13), b"-5", -5),
        (Path(1, 0, 6), b"1", True),
        (Path(1, 0, 10), b"11:1", (11, 1)),
        (Path(5, 0, 13), b"18446744073709551615", 2**64 - 1),
        (Path(5, 0, 0), b"AQID", b"\x01\x02\x03"),
        (Path(3442, 0, 1), b"12", "12"),
    ],
)
def test_plain_text_values_decode_by_their_resource_type(
    path: Path, text: bytes, value: object
) -> None:
    assert decode(TEXT, path, text) == {path: value}
    assert encode(TEXT, path, {path: value}) == text  # type: ignore[dict-item]


def test_plain_text_floats_use_a_decimal_form() -> None:
    assert encode(TEXT, Path(9, 0, 2), {Path(9, 0, 2): 2.5}) == b"2.5"


@pytest.mark.parametrize(
    ("path", "text", "message"),
    [
        (Path(3, 0, 9), b"ten", "not an integer"),
        (Path(3, 0, 9), b"", "not an integer"),
        (Path(1, 0, 6), b"true", "boolean must be '0' or '1'"),
        (Path(1, 0, 10), b"70000:1", "not an object link"),
        (Path(5, 0, 13), b"-1", "unsigned value out of range"),
        (Path(3, 0, 9), b"99999999999999999999", "out of 64-bit range"),
        (Path(3, 0, 0), b"\xff", "not valid UTF-8"),
        (Path(3, 0), b"x", "not a resource path"),
    ],
)
def test_malformed_plain_text_raises_a_codec_error_that_says_why(
    path: Path, text: bytes, message: str
) -> None:
    with pytest.raises(CodecError, match=message):
        decode(TEXT, path, text)


def test_plain_text_encodes_exactly_one_value_at_the_request_path() -> None:
    with pytest.raises(CodecError, match="exactly one value at /3/0/9"):
        encode(TEXT, Path(3, 0, 9), {Path(3, 0, 9): 1, Path(3, 0, 10): 2})


def test_opaque_payloads_are_the_resource_bytes_as_they_are() -> None:
    image = bytes(range(256)) * 3
    assert encode(OPAQUE, Path(5, 0, 0), {Path(5, 0, 0): image}) == image
    assert decode(OPAQUE, Path(5, 0, 0), image) == {Path(5, 0, 0): image}


def test_opaque_is_refused_for_a_resource_of_another_type() -> None:
    with pytest.raises(CodecError, match="is a string resource, not opaque"):
        decode(OPAQUE, Path(5, 0, 1), b"coap://x")
    with pytest.raises(CodecError, match="needs bytes"):
        encode(OPAQUE, Path(3442, 0, 0), {Path(3442, 0, 0): "text"})


def test_the_spec_lwm2m_json_example_decodes_to_typed_values() -> None:
    assert decode(OLD_JSON, Path(3, 0), DEVICE_LWM2M_JSON) == DEVICE_VALUES


def test_lwm2m_json_round_trips_with_booleans_links_and_base64_opaque() -> None:
    values = {Path(1, 0, 6): False, Path(1, 0, 10): (11, 0), Path(1, 0, 1): 86400}
    assert decode(OLD_JSON, Path(1, 0), encode(OLD_JSON, Path(1, 0), values)) == values
    package = encode(OLD_JSON, Path(5, 0, 0), {Path(5, 0, 0): b"\x00\x01"})
    assert b'"sv":"AAE="' in package
    assert decode(OLD_JSON, Path(5, 0, 0), package) == {Path(5, 0, 0): b"\x00\x01"}


def test_lwm2m_json_names_without_bn_are_relative_to_the_request_path() -> None:
    payload = b'{"e":[{"n":"0","sv":"ACME"},{"n":"9","v":7}]}'
    assert decode(OLD_JSON, Path(3, 0), payload) == {Path(3, 0, 0): "ACME", Path(3, 0, 9): 7}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{", "does not parse"),
        (b"[]", 'an object with an "e" array'),
        (b'{"bn":1,"e":[]}', "bn must be text"),
        (b'{"e":[5]}', "entry 0 is not an object"),
        (b'{"e":[{"n":9,"v":1}]}', "n must be text"),
        (b'{"e":[{"n":"9","bv":1}]}', "bv has the wrong kind"),
        (b'{"e":[{"n":"9"}]}', "exactly one value field"),
    ],
)
def test_malformed_lwm2m_json_raises_a_codec_error_that_says_why(
    payload: bytes, message: str
) -> None:
    with pytest.raises(CodecError, match=message):
        decode(OLD_JSON, Path(3, 0), payload)


def test_unknown_content_formats_are_refused_by_number() -> None:
    with pytest.raises(CodecError, match="content format 60: unknown"):
        decode(60, Path(3, 0), b"")
    with pytest.raises(CodecError, match="LINK_FORMAT"):
        encode(ContentFormat.LINK_FORMAT, Path(3, 0), {})
