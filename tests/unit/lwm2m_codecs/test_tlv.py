"""TLV (11542) against the OMA specification's byte vectors and its malformed cases."""

from __future__ import annotations

import pytest

from reconciler.lwm2m.codecs import CodecError, ContentFormat, decode, encode
from reconciler.model.lwm2m import Path

from .vectors import ACCESS_CONTROL_TLV, ACCESS_CONTROL_VALUES, DEVICE_TLV, DEVICE_VALUES, h

TLV = ContentFormat.TLV


def test_the_spec_device_object_example_decodes_to_typed_values() -> None:
    assert decode(TLV, Path(3, 0), DEVICE_TLV) == DEVICE_VALUES


def test_the_device_object_encodes_to_the_spec_bytes_exactly() -> None:
    assert encode(TLV, Path(3, 0), DEVICE_VALUES) == DEVICE_TLV


def test_the_spec_multiple_instance_example_decodes_with_a_16_bit_identifier() -> None:
    assert decode(TLV, Path(2), ACCESS_CONTROL_TLV) == ACCESS_CONTROL_VALUES


def test_multiple_object_instances_encode_to_the_spec_bytes_exactly() -> None:
    assert encode(TLV, Path(2), ACCESS_CONTROL_VALUES) == ACCESS_CONTROL_TLV


def test_an_object_read_wraps_each_instance_in_an_object_instance_tlv() -> None:
    payload = encode(TLV, Path(3), DEVICE_VALUES)
    assert payload[:3] == bytes([0x08, 0x00, len(DEVICE_TLV)])
    assert payload[3:] == DEVICE_TLV
    assert decode(TLV, Path(3), payload) == DEVICE_VALUES


def test_a_single_instance_object_read_without_wrapper_is_instance_zero() -> None:
    assert decode(TLV, Path(3), DEVICE_TLV) == DEVICE_VALUES


def test_a_single_resource_read_is_one_resource_tlv() -> None:
    assert encode(TLV, Path(3, 0, 0), {Path(3, 0, 0): "Open Mobile Alliance"}) == DEVICE_TLV[:23]
    assert decode(TLV, Path(3, 0, 0), DEVICE_TLV[:23]) == {Path(3, 0, 0): "Open Mobile Alliance"}


def test_a_multiple_resource_read_is_a_multiple_resource_tlv() -> None:
    values = {Path(3, 0, 6, 0): 1, Path(3, 0, 6, 1): 5}
    assert encode(TLV, Path(3, 0, 6), values) == h("86 06 41 00 01 41 01 05")
    assert decode(TLV, Path(3, 0, 6), h("86 06 41 00 01 41 01 05")) == values


def test_resource_instances_without_their_multiple_resource_wrapper_are_accepted() -> None:
    assert decode(TLV, Path(3, 0, 6), h("41 00 01 41 01 05")) == {
        Path(3, 0, 6, 0): 1,
        Path(3, 0, 6, 1): 5,
    }


def test_a_resource_instance_read_is_one_resource_instance_tlv() -> None:
    assert encode(TLV, Path(3, 0, 7, 1), {Path(3, 0, 7, 1): 5000}) == h("42 01 13 88")
    assert decode(TLV, Path(3, 0, 7, 1), h("42 01 13 88")) == {Path(3, 0, 7, 1): 5000}


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, "00"),
        (-1, "FF"),
        (127, "7F"),
        (128, "00 80"),
        (-129, "FF 7F"),
        (32768, "00 00 80 00"),
        (2**31, "00 00 00 00 80 00 00 00"),
        (-(2**63), "80 00 00 00 00 00 00 00"),
    ],
)
def test_integers_take_the_shortest_of_1_2_4_or_8_bytes(value: int, encoded: str) -> None:
    payload = encode(TLV, Path(3, 0, 9), {Path(3, 0, 9): value})
    assert payload.endswith(h(encoded))
    assert len(payload) == len(h(encoded)) + (2 if len(h(encoded)) < 8 else 3)
    assert decode(TLV, Path(3, 0, 9), payload) == {Path(3, 0, 9): value}


def test_unsigned_integers_use_the_full_width_without_a_sign() -> None:
    payload = encode(TLV, Path(5, 0, 13), {Path(5, 0, 13): 255})
    assert payload == h("C1 0D FF")
    assert decode(TLV, Path(5, 0, 13), h("C8 0D 08 FF FF FF FF FF FF FF FF")) == {
        Path(5, 0, 13): 2**64 - 1
    }


def test_floats_use_four_bytes_when_exact_and_eight_otherwise() -> None:
    assert encode(TLV, Path(9, 0, 1), {Path(9, 0, 1): 1.5}) == h("C4 01 3F C0 00 00")
    assert encode(TLV, Path(9, 0, 1), {Path(9, 0, 1): 0.1}) == h("C8 01 08 3F B9 99 99 99 99 99 9A")


def test_booleans_object_links_and_opaque_values_have_their_spec_encodings() -> None:
    assert encode(TLV, Path(1, 0, 6), {Path(1, 0, 6): True}) == h("C1 06 01")
    assert encode(TLV, Path(1, 0, 10), {Path(1, 0, 10): (11, 1)}) == h("C4 0A 00 0B 00 01")
    assert decode(TLV, Path(1, 0, 10), h("C4 0A 00 0B 00 01")) == {Path(1, 0, 10): (11, 1)}
    assert decode(TLV, Path(5, 0, 0), h("C3 00 01 02 03")) == {Path(5, 0, 0): b"\x01\x02\x03"}


def test_long_values_use_16_and_24_bit_length_fields() -> None:
    medium, large = b"x" * 300, b"y" * 70000
    assert encode(TLV, Path(5, 0, 0), {Path(5, 0, 0): medium})[:4] == h("D0 00 01 2C")
    assert encode(TLV, Path(5, 0, 0), {Path(5, 0, 0): large})[:5] == h("D8 00 01 11 70")
    assert decode(TLV, Path(5, 0, 0), h("D8 00 01 11 70") + large) == {Path(5, 0, 0): large}


def test_unknown_resources_decode_as_their_raw_bytes() -> None:
    assert decode(TLV, Path(3442, 0), h("C2 05 AB CD")) == {Path(3442, 0, 5): b"\xab\xcd"}


@pytest.mark.parametrize(
    ("base", "payload", "message"),
    [
        (Path(3, 0), h("C8 00 14 4F 70"), "declares 20 value bytes"),
        (Path(3, 0), h("C8"), "truncated"),
        (Path(3, 0), h("E8 00"), "truncated"),
        (Path(3, 0), h("C3 09 00 00 64"), "integer must be 1, 2, 4 or 8 bytes"),
        (Path(3, 0), h("C2 03 C3 28"), "not valid UTF-8"),
        (Path(1, 0), h("C1 06 02"), "boolean must be one byte"),
        (Path(1, 0), h("C3 0A 00 0B 00"), "object link must be 4 bytes"),
        (Path(3, 0), h("C1 00 41 C1 00 42"), "duplicate"),
        (Path(3, 0), h("08 01 03 C1 09 64"), "outside /3/0"),
        (Path(3, 0), h("41 00 01"), "misplaced"),
        (Path(3, 0), h("83 06 C1 00 01"), "cannot sit inside a multiple resource"),
        (Path(3, 0, 9), h("C1 0A 0F"), "outside"),
    ],
)
def test_malformed_tlv_raises_a_codec_error_that_says_why(
    base: Path, payload: bytes, message: str
) -> None:
    with pytest.raises(CodecError, match=message):
        decode(TLV, base, payload)


def test_values_outside_the_request_path_cannot_be_encoded() -> None:
    with pytest.raises(CodecError, match="not under /3/0"):
        encode(TLV, Path(3, 0), {Path(5, 0, 3): 1})


def test_a_value_of_the_wrong_type_for_the_model_cannot_be_encoded() -> None:
    with pytest.raises(CodecError, match="expected a string value"):
        encode(TLV, Path(3, 0), {Path(3, 0, 0): 5})
