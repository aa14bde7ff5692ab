"""The LwM2M 1.0 JSON format (content format 11543), kept for 1.0 clients that send it.

A map {"bn": base name, "bt": base time, "e": [entries]} whose entries carry "n" (name,
appended to bn; relative to the request path when bn is absent) and one of "v" (number),
"sv" (string; base64 for opaque resources), "bv" (boolean) or "ov" (Object Link "3:0").
Decoding is what the server needs; encoding exists for the simulator and round-trip tests.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from typing import Any

from reconciler.model.lwm2m import Path

from .models import ResourceType, resource_type
from .scalars import coerce, decode_base64, infer_type, parse_link_value
from .senml import resolve_name
from .values import CodecError, Value

_KINDS: dict[str, tuple[type, ...]] = {"v": (int, float), "sv": (str,), "bv": (bool,), "ov": (str,)}


def decode_lwm2m_json(base: Path, payload: bytes) -> dict[Path, Value]:
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise CodecError(f"LwM2M JSON does not parse: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("e"), list):
        raise CodecError('LwM2M JSON must be an object with an "e" array')
    base_name = document.get("bn")
    if base_name is not None and not isinstance(base_name, str):
        raise CodecError(f"LwM2M JSON bn must be text, got {base_name!r:.40}")
    out: dict[Path, Value] = {}
    for index, entry in enumerate(document["e"]):
        if not isinstance(entry, dict):
            raise CodecError(f"LwM2M JSON entry {index} is not an object")
        name = entry.get("n", "")
        if not isinstance(name, str):
            raise CodecError(f"LwM2M JSON entry {index}: n must be text")
        path = resolve_name(base, base_name, name, index)
        out[path] = _entry_value(entry, path, index)
    return out


def _entry_value(entry: Mapping[str, Any], path: Path, index: int) -> Value:
    present = [key for key in _KINDS if key in entry]
    if len(present) != 1:
        raise CodecError(f"entry {index} ({path}) needs exactly one value field, has {present}")
    key, raw = present[0], entry[present[0]]
    if not isinstance(raw, _KINDS[key]) or (key == "v" and isinstance(raw, bool)):
        raise CodecError(f"{path}: {key} has the wrong kind of value: {raw!r:.60}")
    rtype = resource_type(path.object_id, path.resource)
    if key == "ov":
        raw = parse_link_value(str(raw), path)
    elif key == "sv" and rtype is ResourceType.OPAQUE:
        raw = decode_base64(str(raw), path)
    return coerce(raw, rtype, path)


def encode_lwm2m_json(base: Path, values: Mapping[Path, Value]) -> bytes:
    entries = []
    for path, value in sorted(values.items()):
        if path.resource is None or path.segments()[: len(base.segments())] != base.segments():
            raise CodecError(f"{path} is not a resource path under {base}")
        relative = "/".join(str(s) for s in path.segments()[len(base.segments()) :])
        entries.append({"n": relative, **_field(value, path)})
    document = {"bn": f"{base}/", "e": entries}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _field(value: Value, path: Path) -> dict[str, object]:
    rtype = resource_type(path.object_id, path.resource)
    checked = coerce(value, rtype if rtype is not ResourceType.NONE else infer_type(value), path)
    if isinstance(checked, bool):
        return {"bv": checked}
    if isinstance(checked, float) and not math.isfinite(checked):
        raise CodecError(f"{path}: {checked} cannot be written in JSON")
    if isinstance(checked, int | float):
        return {"v": checked}
    if isinstance(checked, bytes):
        return {"sv": base64.b64encode(checked).decode()}
    if isinstance(checked, tuple):
        return {"ov": f"{checked[0]}:{checked[1]}"}
    return {"sv": checked}
