"""LwM2M content-format codecs: pure functions, no aiocoap.

`encode(fmt, base, values)` and `decode(fmt, base, payload)` for TLV (11542), plain text
(0), opaque (42), SenML JSON (110), SenML CBOR (112) and the LwM2M 1.0 JSON (11543), typed
by the built-in object models of Objects 1, 3, 4 and 5; `parse_link_format` and
`format_link_format` for CoRE Link Format (40). Used by the LwM2M server, the device client
and the simulator. Malformed input raises `CodecError` (a ValueError).
"""

from .dispatch import decode, encode
from .linkformat import Link, format_link_format, parse_link_format
from .models import OBJECT_MODELS, ResourceModel, ResourceType, resource_model, resource_type
from .values import CodecError, ContentFormat, ObjectLink, Value

__all__ = [
    "OBJECT_MODELS",
    "CodecError",
    "ContentFormat",
    "Link",
    "ObjectLink",
    "ResourceModel",
    "ResourceType",
    "Value",
    "decode",
    "encode",
    "format_link_format",
    "parse_link_format",
    "resource_model",
    "resource_type",
]
