"""Hypothesis: every codec round-trips what it can express, and no input makes it raise
anything but CodecError."""

from __future__ import annotations

import json
from typing import Any

import cbor2
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.lwm2m.codecs import (
    OBJECT_MODELS,
    CodecError,
    ContentFormat,
    Link,
    ResourceType,
    Value,
    decode,
    encode,
    format_link_format,
    parse_link_format,
)
from reconciler.model.lwm2m import Path

UNKNOWN_OBJECT = 3442
_SCALARS: dict[ResourceType, st.SearchStrategy[Any]] = {
    ResourceType.STRING: st.text(max_size=40),
    ResourceType.INTEGER: st.integers(-(2**63), 2**63 - 1),
    ResourceType.TIME: st.integers(-(2**63), 2**63 - 1),
    ResourceType.UNSIGNED: st.integers(0, 2**64 - 1),
    ResourceType.FLOAT: st.floats(allow_nan=False, allow_infinity=False),
    ResourceType.BOOLEAN: st.booleans(),
    ResourceType.OPAQUE: st.binary(max_size=40),
    ResourceType.OBJLNK: st.tuples(st.integers(0, 65535), st.integers(0, 65535)),
}
# What an unmodelled resource keeps through each format (TLV has no type information).
_UNKNOWN_KINDS = {
    ContentFormat.TLV: [ResourceType.OPAQUE],
    ContentFormat.SENML_JSON: list(_SCALARS),
    ContentFormat.SENML_CBOR: list(_SCALARS),
    ContentFormat.LWM2M_JSON: [ResourceType.STRING, ResourceType.BOOLEAN, ResourceType.OBJLNK],
}


@st.composite
def resource_values(draw: st.DrawFn, fmt: ContentFormat, object_id: int) -> dict[Path, Value]:
    """Values of one object instance: modelled resources, or an unknown object's."""
    instance = draw(st.integers(0, 3))
    values: dict[Path, Value] = {}
    if object_id == UNKNOWN_OBJECT:
        for rid in draw(st.sets(st.integers(0, 400), max_size=6)):
            kind = draw(st.sampled_from(_UNKNOWN_KINDS[fmt]))
            values[Path(object_id, instance, rid)] = draw(_SCALARS[kind])
        return values
    models = [m for m in OBJECT_MODELS[object_id].values() if m.type in _SCALARS]
    for model in draw(st.lists(st.sampled_from(models), max_size=8, unique=True)):
        strategy = _SCALARS[model.type]
        if not model.multiple:
            values[Path(object_id, instance, model.resource_id)] = draw(strategy)
            continue
        for ri in draw(st.sets(st.integers(0, 700), min_size=1, max_size=3)):
            values[Path(object_id, instance, model.resource_id, ri)] = draw(strategy)
    return values


MULTI_FORMATS = st.sampled_from(list(_UNKNOWN_KINDS))
OBJECTS = st.sampled_from([1, 3, 4, 5, UNKNOWN_OBJECT])


@settings(max_examples=300, deadline=None)
@given(data=st.data(), fmt=MULTI_FORMATS, object_id=OBJECTS)
def test_object_instance_values_round_trip_through_every_structured_format(
    data: st.DataObject, fmt: ContentFormat, object_id: int
) -> None:
    values = data.draw(resource_values(fmt, object_id))
    for base in {Path(object_id), *(Path(*p.segments()[:2]) for p in values)}:
        under = {
            p: v
            for p, v in values.items()
            if p.segments()[: len(base.segments())] == base.segments()
        }
        assert decode(fmt, base, encode(fmt, base, under)) == under


@settings(max_examples=200, deadline=None)
@given(data=st.data(), object_id=st.sampled_from([1, 3, 4, 5]))
def test_single_modelled_values_round_trip_through_plain_text(
    data: st.DataObject, object_id: int
) -> None:
    models = [m for m in OBJECT_MODELS[object_id].values() if m.type in _SCALARS]
    model = data.draw(st.sampled_from(models))
    path = Path(object_id, 0, model.resource_id)
    value = data.draw(_SCALARS[model.type])
    assert decode(ContentFormat.TEXT, path, encode(ContentFormat.TEXT, path, {path: value})) == {
        path: value
    }


ALL_FORMATS = st.sampled_from([f for f in ContentFormat if f is not ContentFormat.LINK_FORMAT])
BASES = st.builds(
    lambda segs: Path(*segs),
    st.lists(st.integers(0, 70000).filter(lambda n: n <= 65535), min_size=1, max_size=4),
)


def _decodes_or_refuses(fmt: int, base: Path, payload: bytes) -> None:
    try:
        result = decode(fmt, base, payload)
    except CodecError as exc:
        assert str(exc)
    else:
        assert all(isinstance(path, Path) for path in result)


@settings(max_examples=250, deadline=None)
@given(fmt=ALL_FORMATS, base=BASES, payload=st.binary(max_size=80))
def test_random_bytes_decode_or_raise_codec_error_in_every_format(
    fmt: ContentFormat, base: Path, payload: bytes
) -> None:
    _decodes_or_refuses(fmt, base, payload)


@st.composite
def tlv_like(draw: st.DrawFn) -> bytes:
    """Byte strings made of plausible TLV headers, so the fuzzer gets past the first byte."""
    parts = []
    for _ in range(draw(st.integers(1, 5))):
        type_byte = draw(st.integers(0, 255))
        parts.append(bytes([type_byte]) + draw(st.binary(min_size=0, max_size=12)))
    return b"".join(parts)


@settings(max_examples=300, deadline=None)
@given(base=BASES, payload=tlv_like())
def test_tlv_like_garbage_raises_only_codec_error(base: Path, payload: bytes) -> None:
    _decodes_or_refuses(ContentFormat.TLV, base, payload)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["bn", "n", "v", "vs", "vb", "vd", "vlo", "e", "sv", "bv", "ov", "t"]),
            children,
            max_size=5,
        )
    ),
    max_leaves=12,
)
RECORD_KEYS = st.sampled_from([-2, -3, 0, 2, 3, 4, 6, 8, "vlo", 1.5, "x"])
CBOR_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(RECORD_KEYS, children, max_size=5)
    ),
    max_leaves=12,
)


@settings(max_examples=250, deadline=None)
@given(base=BASES, document=JSON_VALUES)
def test_structured_json_garbage_raises_only_codec_error(base: Path, document: object) -> None:
    payload = json.dumps(document).encode()
    _decodes_or_refuses(ContentFormat.SENML_JSON, base, payload)
    _decodes_or_refuses(ContentFormat.LWM2M_JSON, base, payload)


@settings(max_examples=250, deadline=None)
@given(base=BASES, document=CBOR_VALUES)
def test_structured_cbor_garbage_raises_only_codec_error(base: Path, document: object) -> None:
    _decodes_or_refuses(ContentFormat.SENML_CBOR, base, cbor2.dumps(document))


PARAM_NAMES = st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True)
LINKS = st.lists(
    st.builds(
        Link,
        st.from_regex(r"/[0-9a-z/]{0,12}", fullmatch=True),
        st.lists(st.tuples(PARAM_NAMES, st.none() | st.text(max_size=10)), max_size=3).map(tuple),
    ),
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(links=LINKS)
def test_link_format_round_trips_any_links(links: list[Link]) -> None:
    assert parse_link_format(format_link_format(links)) == links


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet='</>;=",a1 \\\n', max_size=40))
def test_link_format_garbage_raises_only_codec_error(text: str) -> None:
    try:
        parse_link_format(text)
    except CodecError as exc:
        assert "link format" in str(exc)
