"""Content-format negotiation and response decoding for the device client: pure.

Which formats to ask a device for (Accept) or to write in, best first, from its LwM2M
version and the `ct` its 1.2 root link announced: 1.0 speaks TLV; 1.1+ SenML CBOR, SenML
JSON or TLV. `None` at the end means "no Accept, take what the device sends". Writes put
first what the device is known to take. Used by `client.py`, which steps down these
lists while the device answers 4.06 / 4.15.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiocoap import Message

from reconciler.errors import DeviceRequestFailed
from reconciler.lwm2m.codecs import CodecError, ContentFormat, Value, decode
from reconciler.model.lwm2m import Path

_CF = ContentFormat
_DECODABLE = frozenset(int(f) for f in ContentFormat) - {int(ContentFormat.LINK_FORMAT)}


def read_formats(version: str, root_ct: int | None = None) -> tuple[int | None, ...]:
    base: tuple[int | None, ...] = (
        (_CF.TLV, None) if version == "1.0"
        else (_CF.SENML_CBOR, _CF.SENML_JSON, _CF.TLV, None)
    )
    if root_ct is None or root_ct not in _DECODABLE or root_ct == base[0]:
        return base
    return (root_ct, *(f for f in base if f != root_ct))


def write_formats(version: str, path: Path, values: Mapping[Path, Value],
                  prefer: Sequence[int | None] = ()) -> tuple[int, ...]:
    """Formats to write in, best first. `prefer`: what the device is known to take (the
    format its reads accepted, the `ct` it registered), so a device without SenML CBOR
    is written in what it speaks at once, not after a 4.06 / 4.15 per format."""
    single = path.resource is not None and set(values) == {path}
    if single and isinstance(values[path], bytes):
        return (_CF.OPAQUE, _CF.TLV)
    many: tuple[int, ...] = (
        (_CF.TLV,) if version == "1.0" else (_CF.SENML_CBOR, _CF.SENML_JSON, _CF.TLV)
    )
    known = next((f for f in prefer if f in many), None)
    if known is not None:
        many = (known, *(f for f in many if f != known))
    # Every client takes plain text for a single resource (OMA 1.0 §6.4.1).
    return (*many, _CF.TEXT) if single else many


MULTI_VALUE = frozenset({_CF.TLV, _CF.SENML_JSON, _CF.SENML_CBOR, _CF.LWM2M_JSON})


def decode_response(path: Path, response: Message) -> dict[Path, Value]:
    """The values a read or notification carried; a payload that does not decode is the
    device's failure (DeviceRequestFailed with the code it answered)."""
    fmt = response.opt.content_format
    if fmt is None:
        # No Content-Format: a single resource comes as text, anything else as TLV (1.0).
        fmt = _CF.TEXT if path.resource is not None else _CF.TLV
    try:
        return decode(int(fmt), path, response.payload)
    except CodecError as exc:
        raise DeviceRequestFailed(str(path), response.code.dotted, f"bad payload: {exc}") from None


def links_under(object_links: tuple[str, ...], path: Path) -> list[str]:
    """The registered object links at or below `path` (Discover's stand-in)."""
    prefix = str(path)
    return [link for link in object_links if link == prefix or link.startswith(prefix + "/")]
