"""The value types every codec speaks: content formats, decoded values and the error.

Owned here so the TLV, text, opaque, SenML and link-format modules share one vocabulary;
callers (the LwM2M server, the device client and the simulator) import them through
`reconciler.lwm2m.codecs`.
"""

from __future__ import annotations

from enum import IntEnum


class ContentFormat(IntEnum):
    """CoAP Content-Format numbers an LwM2M peer may use (IANA CoAP registry)."""

    TEXT = 0
    LINK_FORMAT = 40
    OPAQUE = 42
    SENML_JSON = 110
    SENML_CBOR = 112
    TLV = 11542
    LWM2M_JSON = 11543


# An Object Link (LwM2M objlnk): (object id, instance id), both 0..65535.
ObjectLink = tuple[int, int]
Value = str | int | float | bool | bytes | ObjectLink


class CodecError(ValueError):
    """A payload that cannot be decoded, or values that cannot be encoded, in a format."""
