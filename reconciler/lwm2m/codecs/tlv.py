"""OMA LwM2M TLV (content format 11542): the binary format every 1.0 client speaks.

Each entry is a type byte (bits 7-6: 00 Object Instance, 01 Resource Instance, 10 Multiple
Resource, 11 Resource with Value; bit 5: 8- or 16-bit identifier; bits 4-3: no, 8-, 16- or
24-bit length field; bits 2-0: the length when there is no length field), the identifier,
the length and the value. `encode_tlv`/`decode_tlv` map between that and flat
{Path: Value} dicts relative to the request path; called through `codecs.encode/decode`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from reconciler.model.lwm2m import Path

from .models import resource_type
from .scalars import from_binary, to_binary
from .values import CodecError, Value

OBJECT_INSTANCE, RESOURCE_INSTANCE, MULTIPLE_RESOURCE, RESOURCE = 0, 1, 2, 3
# Which path segment (0 object, 1 instance, 2 resource, 3 resource instance) a kind names.
_SEGMENT = {OBJECT_INSTANCE: 1, MULTIPLE_RESOURCE: 2, RESOURCE: 2, RESOURCE_INSTANCE: 3}
_CHILD_KINDS = {OBJECT_INSTANCE: (RESOURCE, MULTIPLE_RESOURCE), MULTIPLE_RESOURCE: (1,)}
_KIND_NAMES = ("object instance", "resource instance", "multiple resource", "resource")


@dataclass(frozen=True, slots=True)
class Tlv:
    kind: int
    ident: int
    value: bytes  # raw value, or the nested TLVs of an object instance / multiple resource


def iter_tlvs(data: bytes) -> Iterator[Tlv]:
    """Split a buffer into its top-level TLV entries, checking every length."""
    pos = 0
    while pos < len(data):
        entry, pos = _read_one(data, pos)
        yield entry


def _read_one(data: bytes, pos: int) -> tuple[Tlv, int]:
    type_byte = data[pos]
    id_len = 2 if type_byte & 0x20 else 1
    len_len = (type_byte >> 3) & 0x03
    header_end = pos + 1 + id_len + len_len
    if header_end > len(data):
        raise CodecError(f"TLV header at byte {pos} is truncated")
    ident = int.from_bytes(data[pos + 1 : pos + 1 + id_len], "big")
    length = type_byte & 0x07
    if len_len:
        length = int.from_bytes(data[pos + 1 + id_len : header_end], "big")
    end = header_end + length
    if end > len(data):
        raise CodecError(
            f"TLV at byte {pos} declares {length} value bytes, only {len(data) - header_end} left"
        )
    return Tlv(type_byte >> 6, ident, data[header_end:end]), end


def build_tlv(kind: int, ident: int, value: bytes) -> bytes:
    """One TLV entry with the shortest identifier and length fields."""
    if not 0 <= ident <= 0xFFFF:
        raise CodecError(f"TLV identifier out of range: {ident}")
    type_byte = kind << 6
    id_bytes = ident.to_bytes(1 if ident < 0x100 else 2, "big")
    if ident >= 0x100:
        type_byte |= 0x20
    size = len(value)
    if size >= 1 << 24:
        raise CodecError(f"TLV value too long: {size} bytes (24-bit length field)")
    if size < 8:
        return bytes([type_byte | size]) + id_bytes + value
    len_len = 1 if size < 0x100 else 2 if size < 0x10000 else 3
    return bytes([type_byte | len_len << 3]) + id_bytes + size.to_bytes(len_len, "big") + value


def decode_tlv(base: Path, payload: bytes) -> dict[Path, Value]:
    out: dict[Path, Value] = {}
    _walk(payload, base.segments(), base, out, parent_kind=None)
    return out


def _walk(
    data: bytes, at: tuple[int, ...], base: Path, out: dict[Path, Value], parent_kind: int | None
) -> None:
    for entry in iter_tlvs(data):
        if parent_kind is not None and entry.kind not in _CHILD_KINDS[parent_kind]:
            raise CodecError(
                f"a {_KIND_NAMES[entry.kind]} TLV cannot sit inside a {_KIND_NAMES[parent_kind]}"
            )
        segments = _place(entry, at)
        if entry.kind in _CHILD_KINDS:
            _walk(entry.value, segments, base, out, parent_kind=entry.kind)
        else:
            _store(Path(*segments), base, entry.value, out)


def _place(entry: Tlv, at: tuple[int, ...]) -> tuple[int, ...]:
    """The path segments an entry stands for, given its container's segments."""
    index = _SEGMENT[entry.kind]
    if index < len(at):  # the entry repeats a segment the request path already fixed
        if at[index] != entry.ident:
            raise CodecError(f"TLV {_KIND_NAMES[entry.kind]} {entry.ident} is outside {Path(*at)}")
        return at[: index + 1]
    if index == 2 and len(at) == 1:
        at = (*at, 0)  # a single-instance object read may omit the instance wrapper
    if index != len(at):
        raise CodecError(f"a {_KIND_NAMES[entry.kind]} TLV is misplaced under {Path(*at)}")
    return (*at, entry.ident)


def _store(path: Path, base: Path, raw: bytes, out: dict[Path, Value]) -> None:
    if path.segments()[: len(base.segments())] != base.segments():
        raise CodecError(f"TLV value for {path} is outside the request path {base}")
    if path in out:
        raise CodecError(f"duplicate TLV value for {path}")
    out[path] = from_binary(raw, resource_type(path.object_id, path.resource), path)


def encode_tlv(base: Path, values: Mapping[Path, Value]) -> bytes:
    depth = len(base.segments())
    tree: dict[int, dict[int, dict[int | None, bytes]]] = {}
    for path, value in sorted(values.items()):
        _check_under(base, path)
        assert path.instance is not None and path.resource is not None
        raw = to_binary(value, resource_type(path.object_id, path.resource), path)
        tree.setdefault(path.instance, {}).setdefault(path.resource, {})[path.resource_instance] = (
            raw
        )
    if depth == 1:
        return b"".join(
            build_tlv(OBJECT_INSTANCE, inst, _resources(res)) for inst, res in tree.items()
        )
    if depth == 4:
        assert base.resource_instance is not None
        if len(values) != 1:
            raise CodecError(f"{base}: exactly one value for the resource instance is needed")
        only = tree[base.instance or 0][base.resource or 0][base.resource_instance]
        return build_tlv(RESOURCE_INSTANCE, base.resource_instance, only)
    return _resources(next(iter(tree.values()), {}))


def _resources(resources: Mapping[int, Mapping[int | None, bytes]]) -> bytes:
    parts = []
    for rid, instances in resources.items():
        if None in instances:
            if len(instances) > 1:
                raise CodecError(f"resource {rid} given both as single and multiple")
            parts.append(build_tlv(RESOURCE, rid, instances[None]))
            continue
        nested = b"".join(build_tlv(RESOURCE_INSTANCE, i or 0, raw) for i, raw in instances.items())
        parts.append(build_tlv(MULTIPLE_RESOURCE, rid, nested))
    return b"".join(parts)


def _check_under(base: Path, path: Path) -> None:
    if path.resource is None:
        raise CodecError(f"{path}: a value needs a resource path")
    if path.segments()[: len(base.segments())] != base.segments():
        raise CodecError(f"{path} is not under {base}")
