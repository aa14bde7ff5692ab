"""Single resource values to and from their TLV binary and plain-text representations.

Owns the OMA LwM2M data type rules: integers in 1/2/4/8 bytes two's complement (unsigned
in 1/2/4/8 bytes), floats in 4/8 bytes IEEE 754, booleans as one byte 0/1, time as an
integer, Object Links as two 16-bit ids ("3:0" in text). Used by the TLV, text and SenML
codecs; `ResourceType | None` is None for resources without a built-in model.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct

from reconciler.model.lwm2m import Path

from .models import ResourceType
from .values import CodecError, ObjectLink, Value

_INT_TYPES = (ResourceType.INTEGER, ResourceType.TIME)
_PYTHON_TYPES: dict[ResourceType, type] = {
    ResourceType.BOOLEAN: bool,
    ResourceType.STRING: str,
    ResourceType.OPAQUE: bytes,
}
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_LINK_TEXT = re.compile(r"([0-9]{1,5}):([0-9]{1,5})")


def infer_type(value: Value) -> ResourceType:
    """The LwM2M type a Python value stands for when no model names one."""
    if isinstance(value, bool):
        return ResourceType.BOOLEAN
    if isinstance(value, int):
        # Above the signed range only LwM2M 1.1's Unsigned Integer can hold it.
        return ResourceType.UNSIGNED if value >= 2**63 else ResourceType.INTEGER
    if isinstance(value, float):
        return ResourceType.FLOAT
    if isinstance(value, str):
        return ResourceType.STRING
    if isinstance(value, bytes):
        return ResourceType.OPAQUE
    return ResourceType.OBJLNK


def coerce(value: object, rtype: ResourceType | None, path: Path) -> Value:
    """Check (and where lossless, convert) a decoded value against the model's type."""
    if rtype is None or rtype is ResourceType.NONE:
        return _checked_value(value, path)
    if rtype in (*_INT_TYPES, ResourceType.UNSIGNED):
        return _as_int(value, rtype, path)
    if rtype is ResourceType.FLOAT:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif isinstance(value, _PYTHON_TYPES.get(rtype, ())):
        assert isinstance(value, bool | str | bytes)
        return value
    elif rtype is ResourceType.OBJLNK and _is_link(value):
        return _checked_value(value, path)
    raise CodecError(f"{path}: expected a {rtype.value} value, got {value!r:.60}")


def _checked_value(value: object, path: Path) -> Value:
    if isinstance(value, str | int | float | bytes):
        return value
    if _is_link(value):
        assert isinstance(value, tuple)
        return (int(value[0]), int(value[1]))
    raise CodecError(f"{path}: not an LwM2M value: {value!r:.60}")


def _is_link(value: object) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and all(0 <= v <= 0xFFFF for v in value)
    )


def _as_int(value: object, rtype: ResourceType, path: Path) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise CodecError(f"{path}: expected an {rtype.value} value, got {value!r:.60}")
    if rtype is ResourceType.UNSIGNED and not 0 <= value < 2**64:
        raise CodecError(f"{path}: unsigned value out of range: {value}")
    if rtype is not ResourceType.UNSIGNED and not -(2**63) <= value < 2**63:
        raise CodecError(f"{path}: integer value out of 64-bit range: {value}")
    return value


# --- TLV binary values -------------------------------------------------------------


def to_binary(value: Value, rtype: ResourceType | None, path: Path) -> bytes:
    """The TLV value bytes of one resource (instance) value."""
    kind = rtype if rtype is not None and rtype is not ResourceType.NONE else infer_type(value)
    checked = coerce(value, kind, path)
    if kind is ResourceType.UNSIGNED:
        assert isinstance(checked, int)
        return _int_bytes(checked, signed=False)
    if kind in _INT_TYPES:
        assert isinstance(checked, int)
        return _int_bytes(checked, signed=True)
    if kind is ResourceType.FLOAT:
        assert isinstance(checked, float)
        return _float_bytes(checked)
    if kind is ResourceType.BOOLEAN:
        return b"\x01" if checked else b"\x00"
    if kind is ResourceType.OBJLNK:
        assert isinstance(checked, tuple)
        return struct.pack(">HH", *checked)
    if isinstance(checked, str):
        return checked.encode()
    assert isinstance(checked, bytes)
    return checked


def _int_bytes(value: int, *, signed: bool) -> bytes:
    for width in (1, 2, 4, 8):
        try:
            return value.to_bytes(width, "big", signed=signed)
        except OverflowError:
            continue
    raise AssertionError("range checked by coerce")


def _float_bytes(value: float) -> bytes:
    # 4 bytes when that loses nothing, as the spec allows either width.
    try:
        single = struct.pack(">f", value)
    except OverflowError:
        return struct.pack(">d", value)
    if struct.unpack(">f", single)[0] == value or math.isnan(value):
        return single
    return struct.pack(">d", value)


def from_binary(raw: bytes, rtype: ResourceType | None, path: Path) -> Value:
    """Decode TLV value bytes by the model's type; unknown resources stay bytes."""
    if rtype is None or rtype in (ResourceType.OPAQUE, ResourceType.NONE):
        return raw
    if rtype is ResourceType.STRING:
        return _utf8(raw, path)
    if rtype in (*_INT_TYPES, ResourceType.UNSIGNED):
        if len(raw) not in (1, 2, 4, 8):
            raise CodecError(f"{path}: {rtype.value} must be 1, 2, 4 or 8 bytes, got {len(raw)}")
        return int.from_bytes(raw, "big", signed=rtype is not ResourceType.UNSIGNED)
    if rtype is ResourceType.FLOAT:
        if len(raw) not in (4, 8):
            raise CodecError(f"{path}: float must be 4 or 8 bytes, got {len(raw)}")
        return float(struct.unpack(">f" if len(raw) == 4 else ">d", raw)[0])
    if rtype is ResourceType.BOOLEAN:
        if raw not in (b"\x00", b"\x01"):
            raise CodecError(f"{path}: boolean must be one byte 0 or 1, got {raw.hex()}")
        return raw == b"\x01"
    if len(raw) != 4:
        raise CodecError(f"{path}: object link must be 4 bytes, got {len(raw)}")
    link: ObjectLink = struct.unpack(">HH", raw)
    return link


def _utf8(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CodecError(f"{path}: string is not valid UTF-8: {exc}") from None


# --- plain text values -------------------------------------------------------------


def to_text(value: Value, rtype: ResourceType | None, path: Path) -> str:
    """The plain-text (content format 0) form of one value."""
    kind = rtype if rtype is not None and rtype is not ResourceType.NONE else infer_type(value)
    checked = coerce(value, kind, path)
    if isinstance(checked, bool):
        return "1" if checked else "0"
    if isinstance(checked, float) and not math.isfinite(checked):
        raise CodecError(f"{path}: {checked} has no plain-text form")
    if isinstance(checked, int | float):
        return repr(checked)
    if isinstance(checked, bytes):
        # LwM2M 1.0 carries opaque resources in text as base64.
        return base64.b64encode(checked).decode()
    if isinstance(checked, tuple):
        return f"{checked[0]}:{checked[1]}"
    return checked


def from_text(text: str, rtype: ResourceType | None, path: Path) -> Value:
    """Parse a plain-text value by the model's type; unknown resources stay str."""
    if rtype is None or rtype in (ResourceType.STRING, ResourceType.NONE):
        return text
    if rtype in (*_INT_TYPES, ResourceType.UNSIGNED):
        if not _INT_TEXT.fullmatch(text):
            raise CodecError(f"{path}: not an integer: {text!r:.60}")
        return _as_int(int(text), rtype, path)
    if rtype is ResourceType.FLOAT:
        if not _FLOAT_TEXT.fullmatch(text):
            raise CodecError(f"{path}: not a float: {text!r:.60}")
        return float(text)
    if rtype is ResourceType.BOOLEAN:
        if text not in ("0", "1"):
            raise CodecError(f"{path}: boolean must be '0' or '1', got {text!r:.60}")
        return text == "1"
    if rtype is ResourceType.OBJLNK:
        return parse_link_value(text, path)
    return decode_base64(text, path)


def parse_link_value(text: str, path: Path) -> ObjectLink:
    """Parse "3:0" -> (3, 0), as text, SenML vlo and LwM2M JSON ov carry Object Links."""
    match = _LINK_TEXT.fullmatch(text)
    if match is None or max(int(match[1]), int(match[2])) > 0xFFFF:
        raise CodecError(f"{path}: not an object link 'object:instance': {text!r:.60}")
    return int(match[1]), int(match[2])


def decode_base64(text: str, path: Path) -> bytes:
    """Standard or URL-safe base64, padded or not (peers differ; RFC 8428 says base64url)."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CodecError(f"{path}: not base64: {text!r:.60} ({exc})") from None
