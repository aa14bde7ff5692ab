"""The LwM2M wire layer: the only package of ours that imports aiocoap.

`codecs/` holds the pure content-format codecs (TLV, text, opaque, SenML JSON/CBOR, LwM2M
JSON, link format); `server.py` the registration interface and device client;
`firmware.py` the block-wise firmware delivery. The controller composes them; the
simulator reuses the codecs. See docs/contracts.md for the public surface.
"""
