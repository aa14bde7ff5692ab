"""SenML JSON (110) and SenML CBOR (112) as LwM2M 1.1/1.2 define them."""

from __future__ import annotations

import cbor2
import pytest

from reconciler.lwm2m.codecs import CodecError, ContentFormat, decode, encode
from reconciler.lwm2m.codecs.senml import decode_senml
from reconciler.model.lwm2m import Path

from .vectors import DEVICE_SENML_JSON, DEVICE_VALUES, h

JSON, CBOR = ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR


def test_the_spec_device_object_example_decodes_from_senml_json() -> None:
    assert decode(JSON, Path(3, 0), DEVICE_SENML_JSON) == DEVICE_VALUES


def test_the_device_object_encodes_to_the_spec_senml_json_exactly() -> None:
    assert encode(JSON, Path(3, 0), DEVICE_VALUES) == DEVICE_SENML_JSON


def test_senml_cbor_uses_the_numeric_labels_minus_2_bn_0_n_and_3_vs() -> None:
    payload = encode(CBOR, Path(3, 0), {Path(3, 0, 0): "Open Mobile Alliance"})
    # [{-2: "/3/0/", 0: "0", 3: "Open Mobile Alliance"}] byte by byte (RFC 8949 rules).
    assert payload == h("81 A3 21 65 2F 33 2F 30 2F 00 61 30 03 74") + b"Open Mobile Alliance"


def test_senml_cbor_numbers_booleans_and_opaque_use_labels_2_4_and_8() -> None:
    values = {Path(5, 0, 3): 2, Path(1, 0, 6): True, Path(5, 0, 0): b"\x00\xff"}
    records = cbor2.loads(encode(CBOR, Path(1), {Path(1, 0, 6): True}))
    assert records == [{-2: "/1/", 0: "0/6", 4: True}]
    assert cbor2.loads(encode(CBOR, Path(5, 0, 0), {Path(5, 0, 0): b"\x00\xff"})) == [
        {-2: "/5/0/0", 8: b"\x00\xff"}
    ]
    for path, value in values.items():
        assert decode(CBOR, path, encode(CBOR, path, {path: value})) == {path: value}


def test_object_links_travel_as_vlo_in_json_and_cbor() -> None:
    path = Path(3, 0, 22, 0)
    assert b'"vlo":"3:1"' in encode(JSON, Path(3, 0), {path: (3, 1)})
    assert cbor2.loads(encode(CBOR, path, {path: (3, 1)})) == [{-2: "/3/0/22/0", "vlo": "3:1"}]
    assert decode(CBOR, Path(3), cbor2.dumps([{0: "/3/0/22/0", "vlo": "3:1"}])) == {path: (3, 1)}


def test_opaque_values_are_base64url_without_padding_in_json() -> None:
    payload = encode(JSON, Path(5, 0, 0), {Path(5, 0, 0): b"\xfb\xff"})
    assert payload == b'[{"bn":"/5/0/0","vd":"-_8"}]'
    assert decode(JSON, Path(5, 0, 0), payload) == {Path(5, 0, 0): b"\xfb\xff"}
    assert decode(JSON, Path(5), b'[{"n":"/5/0/0","vd":"+/8="}]') == {Path(5, 0, 0): b"\xfb\xff"}


def test_a_base_name_applies_until_the_next_record_that_sets_one() -> None:
    pack = (
        b'[{"bn":"/4/0/","n":"1/0","v":6},{"n":"2","v":-90},'
        b'{"bn":"/4/1/","n":"1/0","v":7},{"n":"4/0","vs":"10.0.0.1"}]'
    )
    assert decode(JSON, Path(4), pack) == {
        Path(4, 0, 1, 0): 6,
        Path(4, 0, 2): -90,
        Path(4, 1, 1, 0): 7,
        Path(4, 1, 4, 0): "10.0.0.1",
    }
    with pytest.raises(CodecError, match="outside the request path /4/0"):
        decode(JSON, Path(4, 0), pack)


def test_later_records_of_a_time_series_supersede_earlier_ones() -> None:
    pack = b'[{"bn":"/3/0/9","bt":100,"v":80},{"bn":"/3/0/9","t":10,"v":79}]'
    assert decode(JSON, Path(3, 0, 9), pack) == {Path(3, 0, 9): 79}


def test_numbers_take_the_model_type_and_unknown_ones_keep_theirs() -> None:
    assert decode(JSON, Path(3, 0, 9), b'[{"bn":"/3/0/9","v":80.0}]') == {Path(3, 0, 9): 80}
    assert decode(JSON, Path(3442, 0, 1), b'[{"n":"/3442/0/1","v":2.5}]') == {Path(3442, 0, 1): 2.5}


def test_names_without_a_base_name_are_relative_to_the_request_path() -> None:
    assert decode(JSON, Path(3, 0), b'[{"n":"9","v":80}]') == {Path(3, 0, 9): 80}
    assert decode(JSON, Path(3, 0, 9), b'[{"v":80}]') == {Path(3, 0, 9): 80}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"[{", "does not parse"),
        (b'{"bn":"/3/0/"}', "must be an array"),
        (b"[1]", "record 0 is not a map"),
        (b'[{"bn":5,"v":1}]', "bn must be text"),
        (b'[{"n":"/3/0/9"}]', "needs exactly one value field"),
        (b'[{"n":"/3/0/9","v":1,"vs":"1"}]', "needs exactly one value field"),
        (b'[{"n":"/3/0/9","v":true}]', "v has the wrong kind"),
        (b'[{"n":"/3/0/9","v":1.5}]', "expected an integer"),
        (b'[{"n":"/3/0/0","v":1}]', "expected a string"),
        (b'[{"n":"/3/x/0","vs":"a"}]', "not an LwM2M path"),
        (b'[{"n":"/3/0","vs":"a"}]', "names no resource"),
        (b'[{"n":"/3/0/22/0","vlo":"3"}]', "not an object link"),
        (b'[{"n":"/5/0/0","vd":"!!"}]', "not base64"),
    ],
)
def test_malformed_senml_json_raises_a_codec_error_that_says_why(
    payload: bytes, message: str
) -> None:
    base = Path(5) if b"/5/" in payload else Path(3)
    with pytest.raises(CodecError, match=message):
        decode(JSON, base, payload)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (h("81 A1"), "does not parse"),
        (cbor2.dumps({0: "x"}), "must be an array"),
        (cbor2.dumps([{1.5: "x", 2: 1}]), "neither a number nor text"),
        (cbor2.dumps([{0: "/5/0/0", 8: "AAAA"}]), "vd has the wrong kind"),
        (cbor2.dumps([{0: "/5/0/3", 2: 1, 3: "x"}]), "exactly one value field"),
    ],
)
def test_malformed_senml_cbor_raises_a_codec_error_that_says_why(
    payload: bytes, message: str
) -> None:
    with pytest.raises(CodecError, match=message):
        decode(CBOR, Path(5), payload)


def test_reads_and_send_share_one_strictness_for_cbor_labels_and_trailing_bytes() -> None:
    unknown_label = cbor2.dumps([{0: "/3/0/9", 2: 5, 99: "ignored"}])
    assert decode(CBOR, Path(3, 0), unknown_label) == {Path(3, 0, 9): 5}
    assert decode_senml(unknown_label, cbor=True, base=None) == {Path(3, 0, 9): 5}
    for base in (Path(3, 0), None):
        with pytest.raises(CodecError, match="bytes after the SenML CBOR pack"):
            decode_senml(unknown_label + b"\x00", cbor=True, base=base)
        with pytest.raises(CodecError, match="neither a number nor text"):
            decode_senml(cbor2.dumps([{b"n": "/3/0/9", 2: 5}]), cbor=True, base=base)


def test_without_a_request_path_every_name_must_be_a_full_path() -> None:
    with pytest.raises(CodecError, match="not a full path"):
        decode_senml(b'[{"n":"9","v":5}]', cbor=False, base=None)
    assert decode_senml(b'[{"bn":"/3/0/","n":"9","v":5}]', cbor=False, base=None) == {
        Path(3, 0, 9): 5}


@pytest.mark.parametrize("fmt", [ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR])
@pytest.mark.parametrize("value", [2**63, 2**64 - 1, -(2**63)])
def test_an_unmodelled_integer_round_trips_across_the_whole_64_bit_range(
    fmt: ContentFormat, value: int
) -> None:
    # Found by hypothesis: an unmodelled 2**63 was typed Integer and refused on encode.
    path = Path(3442, 0, 1)
    assert decode(fmt, Path(3442), encode(fmt, Path(3442), {path: value})) == {path: value}
