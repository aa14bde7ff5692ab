"""`encode` and `decode`: the one entry point the server, client and simulator call.

Picks the codec by CoAP content format and guarantees the error contract: whatever the
payload, decoding either returns {Path: Value} or raises CodecError with a message that
says what was wrong (never IndexError, UnicodeDecodeError, struct.error and friends).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from reconciler.model.lwm2m import Path

from .lwm2m_json import decode_lwm2m_json, encode_lwm2m_json
from .senml import decode_senml_cbor, decode_senml_json, encode_senml_cbor, encode_senml_json
from .single import decode_opaque, decode_text, encode_opaque, encode_text
from .tlv import decode_tlv, encode_tlv
from .values import CodecError, ContentFormat, Value

Decoder = Callable[[Path, bytes], dict[Path, Value]]
Encoder = Callable[[Path, Mapping[Path, Value]], bytes]

DECODERS: dict[ContentFormat, Decoder] = {
    ContentFormat.TEXT: decode_text,
    ContentFormat.OPAQUE: decode_opaque,
    ContentFormat.TLV: decode_tlv,
    ContentFormat.SENML_JSON: decode_senml_json,
    ContentFormat.SENML_CBOR: decode_senml_cbor,
    ContentFormat.LWM2M_JSON: decode_lwm2m_json,
}
ENCODERS: dict[ContentFormat, Encoder] = {
    ContentFormat.TEXT: encode_text,
    ContentFormat.OPAQUE: encode_opaque,
    ContentFormat.TLV: encode_tlv,
    ContentFormat.SENML_JSON: encode_senml_json,
    ContentFormat.SENML_CBOR: encode_senml_cbor,
    ContentFormat.LWM2M_JSON: encode_lwm2m_json,
}


def _format(fmt: int, table: Mapping[ContentFormat, object], verb: str) -> ContentFormat:
    try:
        known = ContentFormat(fmt)
    except ValueError:
        raise CodecError(f"cannot {verb} content format {fmt}: unknown") from None
    if known not in table:
        raise CodecError(f"cannot {verb} content format {known.value} ({known.name})")
    return known


def decode(fmt: int, base: Path, payload: bytes) -> dict[Path, Value]:
    """Values under `base` (the request path) carried by `payload` in content format `fmt`."""
    known = _format(fmt, DECODERS, "decode")
    try:
        return DECODERS[known](base, bytes(payload))
    except CodecError:
        raise
    except (ValueError, TypeError, LookupError, OverflowError, RecursionError) as exc:
        # A last guard so the contract holds for inputs the codecs did not foresee.
        raise CodecError(f"malformed {known.name} payload for {base}: {exc}") from exc


def encode(fmt: int, base: Path, values: Mapping[Path, Value]) -> bytes:
    """`values` (full paths under `base`) as a payload in content format `fmt`."""
    known = _format(fmt, ENCODERS, "encode")
    return ENCODERS[known](base, values)
