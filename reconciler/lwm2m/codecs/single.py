"""Plain text (content format 0) and opaque (42): one value of one resource (instance).

Both carry a single value, so the request path must name a resource or resource instance
and exactly that path is decoded or encoded. Text values are typed by the built-in object
models (unknown resources stay str); opaque payloads are the value bytes as they are.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.model.lwm2m import Path

from .models import ResourceType, resource_type
from .scalars import from_text, to_text
from .values import CodecError, Value


def _single_path(base: Path, fmt_name: str) -> None:
    if base.resource is None:
        raise CodecError(f"{fmt_name} carries one resource value; {base} is not a resource path")


def _only_value(base: Path, values: Mapping[Path, Value], fmt_name: str) -> Value:
    _single_path(base, fmt_name)
    if set(values) != {base}:
        names = ", ".join(str(p) for p in sorted(values)) or "nothing"
        raise CodecError(f"{fmt_name} encodes exactly one value at {base}, got {names}")
    return values[base]


def decode_text(base: Path, payload: bytes) -> dict[Path, Value]:
    _single_path(base, "plain text")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CodecError(f"{base}: plain text is not valid UTF-8: {exc}") from None
    return {base: from_text(text, resource_type(base.object_id, base.resource), base)}


def encode_text(base: Path, values: Mapping[Path, Value]) -> bytes:
    value = _only_value(base, values, "plain text")
    return to_text(value, resource_type(base.object_id, base.resource), base).encode()


def decode_opaque(base: Path, payload: bytes) -> dict[Path, Value]:
    _single_path(base, "opaque")
    rtype = resource_type(base.object_id, base.resource)
    if rtype not in (None, ResourceType.OPAQUE):
        raise CodecError(f"{base} is a {rtype.value} resource, not opaque")
    return {base: bytes(payload)}


def encode_opaque(base: Path, values: Mapping[Path, Value]) -> bytes:
    value = _only_value(base, values, "opaque")
    if not isinstance(value, bytes):
        raise CodecError(f"{base}: opaque content needs bytes, got {type(value).__name__}")
    return value
