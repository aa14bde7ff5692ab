"""SenML JSON (110) and SenML CBOR (112) as LwM2M 1.1/1.2 use them (RFC 8428 + LwM2M rules).

Records carry bn (base name, replaced by each record that has one), n (name, appended to
the current base name to give the full path), and one value field: v (number), vs
(string), vb (boolean), vd (opaque: base64url in JSON, a byte string in CBOR) or vlo (the
LwM2M Object Link "3:0"). CBOR uses the numeric labels -2 bn, -3 bt, 0 n, 2 v, 3 vs,
4 vb, 6 t, 8 vd and the text label "vlo". Called through `codecs.encode/decode` (names
relative to the request path) and by Send (`decode_senml(..., base=None)`: full paths).
One decoder, one strictness: a pack is exactly one CBOR data item or JSON text; a CBOR
label that is neither a number nor text is malformed; labels and fields we do not know
are ignored (RFC 8428 §4.4).
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Mapping
from typing import Any

import cbor2

from reconciler.model.lwm2m import Path

from .models import ResourceType, resource_type
from .scalars import coerce, decode_base64, infer_type, parse_link_value
from .values import CodecError, Value

CBOR_LABELS = {
    -1: "bver",
    -2: "bn",
    -3: "bt",
    -4: "bu",
    -5: "bv",
    -6: "bs",
    0: "n",
    1: "u",
    2: "v",
    3: "vs",
    4: "vb",
    5: "s",
    6: "t",
    7: "ut",
    8: "vd",
}
_CBOR_KEYS = {name: label for label, name in CBOR_LABELS.items()}
_VALUE_FIELDS = ("v", "vs", "vb", "vd", "vlo")


# --- decoding ----------------------------------------------------------------------


def decode_senml(payload: bytes, *, cbor: bool, base: Path | None) -> dict[Path, Value]:
    """The values of a SenML JSON (`cbor=False`) or CBOR pack. With a `base` (a Read or
    Notify of that path) names are relative to it and must stay under it; with None (a
    Send) every record must name a full path (bn + n)."""
    pack = _parse_cbor(payload) if cbor else _parse_json(payload)
    if cbor and isinstance(pack, list):
        pack = [_cbor_record(r) if isinstance(r, dict) else r for r in pack]
    return decode_records(base, pack, binary_vd=cbor)


def decode_senml_json(base: Path, payload: bytes) -> dict[Path, Value]:
    return decode_senml(payload, cbor=False, base=base)


def decode_senml_cbor(base: Path, payload: bytes) -> dict[Path, Value]:
    return decode_senml(payload, cbor=True, base=base)


def _parse_json(payload: bytes) -> object:
    try:
        return json.loads(payload)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise CodecError(f"SenML JSON does not parse: {exc}") from None


def _parse_cbor(payload: bytes) -> object:
    stream = io.BytesIO(payload)
    try:
        pack = cbor2.CBORDecoder(stream).decode()
    except (cbor2.CBORError, ValueError, TypeError, LookupError, RecursionError) as exc:
        raise CodecError(f"SenML CBOR does not parse: {exc}") from None
    if stream.tell() != len(payload):
        raise CodecError(f"{len(payload) - stream.tell()} bytes after the SenML CBOR pack")
    return pack


def _cbor_record(record: dict[Any, Any]) -> dict[str, Any]:
    """CBOR's numeric labels as SenML names; unknown numeric labels are dropped."""
    named: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(key, int):
            name = CBOR_LABELS.get(key)
            if name is not None:
                named[name] = value
        elif isinstance(key, str):
            named[key] = value
        else:
            raise CodecError(f"SenML CBOR label {key!r:.40} is neither a number nor text")
    return named


def decode_records(base: Path | None, pack: object, *, binary_vd: bool) -> dict[Path, Value]:
    """Resolve names and values of a parsed SenML pack (list of records); `base` as for
    `decode_senml`."""
    if not isinstance(pack, list):
        raise CodecError(f"SenML pack must be an array of records, got {type(pack).__name__}")
    out: dict[Path, Value] = {}
    base_name: str | None = None
    for index, record in enumerate(pack):
        if not isinstance(record, dict):
            raise CodecError(f"SenML record {index} is not a map")
        if "bn" in record:
            base_name = _text_field(record, "bn", index)
        path = resolve_name(base, base_name, _text_field(record, "n", index, ""), index)
        # Later records for the same name (a time series) supersede earlier ones.
        try:
            out[path] = _record_value(record, path, index, binary_vd=binary_vd)
        except CodecError as exc:
            raise CodecError(f"record {index}: {exc}") from None
    return out


def _text_field(record: Mapping[str, Any], key: str, index: int, default: str = "") -> str:
    value = record.get(key, default)
    if not isinstance(value, str):
        raise CodecError(f"SenML record {index}: {key} must be text, got {value!r:.40}")
    return value


def resolve_name(base: Path | None, base_name: str | None, name: str, index: int) -> Path:
    """bn + n as an LwM2M path under the request path (names without bn are relative), or
    as a full path when there is no request path (`base` None)."""
    full = (base_name or "") + name
    if not full.startswith("/"):
        if base is None:
            raise CodecError(f"record {index}: {full!r} is not a full path (bn + n)")
        full = f"{base}/{full}" if full else str(base)
    try:
        path = Path.parse(full)
    except ValueError as exc:
        raise CodecError(f"record {index}: {exc}") from None
    if path.resource is None:
        raise CodecError(f"record {index}: {full!r} names no resource")
    if base is not None and path.segments()[: len(base.segments())] != base.segments():
        raise CodecError(f"record {index}: {path} is outside the request path {base}")
    return path


def _record_value(record: Mapping[str, Any], path: Path, index: int, *, binary_vd: bool) -> Value:
    present = [key for key in _VALUE_FIELDS if key in record]
    if len(present) != 1:
        raise CodecError(f"{path} needs exactly one value field, has {present}")
    key, raw = present[0], record[present[0]]
    rtype = resource_type(path.object_id, path.resource)
    return coerce(_raw_value(key, raw, path, binary_vd), rtype, path)


def _raw_value(key: str, raw: object, path: Path, binary_vd: bool) -> object:
    wanted: tuple[type, ...] = {"v": (int, float), "vs": (str,), "vb": (bool,)}.get(key, (str,))
    if key == "vd" and binary_vd:
        wanted = (bytes,)
    if not isinstance(raw, wanted) or (key == "v" and isinstance(raw, bool)):
        raise CodecError(f"{path}: {key} has the wrong kind of value: {raw!r:.60}")
    if key == "vd" and isinstance(raw, str):
        return decode_base64(raw, path)
    if key == "vlo":
        assert isinstance(raw, str)
        return parse_link_value(raw, path)
    return raw


# --- encoding ----------------------------------------------------------------------


def encode_records(
    base: Path, values: Mapping[Path, Value], *, binary_vd: bool
) -> list[dict[str, Any]]:
    """SenML records with bn on the first one and names relative to the request path."""
    records: list[dict[str, Any]] = []
    single = set(values) == {base}
    prefix = str(base) if single else str(base) + "/"
    for path, value in sorted(values.items()):
        if path.resource is None or path.segments()[: len(base.segments())] != base.segments():
            raise CodecError(f"{path} is not a resource path under {base}")
        record: dict[str, Any] = {"bn": prefix} if not records else {}
        relative = "/".join(str(s) for s in path.segments()[len(base.segments()) :])
        if relative:
            record["n"] = relative
        key, field = _value_field(value, path, binary_vd)
        record[key] = field
        records.append(record)
    return records


def _value_field(value: Value, path: Path, binary_vd: bool) -> tuple[str, object]:
    rtype = resource_type(path.object_id, path.resource)
    kind = rtype if rtype not in (None, ResourceType.NONE) else infer_type(value)
    checked = coerce(value, kind, path)
    if isinstance(checked, bool):
        return "vb", checked
    if isinstance(checked, int | float):
        if isinstance(checked, float) and not math.isfinite(checked) and not binary_vd:
            raise CodecError(f"{path}: {checked} cannot be written in SenML JSON")
        return "v", checked
    if isinstance(checked, str):
        return "vs", checked
    if isinstance(checked, bytes):
        if binary_vd:
            return "vd", checked
        return "vd", base64.urlsafe_b64encode(checked).rstrip(b"=").decode()
    return "vlo", f"{checked[0]}:{checked[1]}"


def encode_senml_json(base: Path, values: Mapping[Path, Value]) -> bytes:
    records = encode_records(base, values, binary_vd=False)
    return json.dumps(records, separators=(",", ":"), ensure_ascii=False).encode()


def encode_senml_cbor(base: Path, values: Mapping[Path, Value]) -> bytes:
    records = encode_records(base, values, binary_vd=True)
    return bytes(cbor2.dumps([{_CBOR_KEYS.get(k, k): v for k, v in r.items()} for r in records]))
