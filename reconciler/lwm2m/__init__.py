"""The LwM2M wire layer: the only package of ours that imports aiocoap.

`codecs/` holds the pure content-format codecs (TLV, text, opaque, SenML JSON/CBOR, LwM2M
JSON, link format). `server.py` is the server endpoint (`Lwm2mServer`): the registration
interface (`rd.py` resources, `registration.py` parsing, `registry.py` table), Send
(`send.py`, `POST /dp`), queue mode (`queue.py`) and hardening of aiocoap's message layer
(`wire.py`, through `aiocoap_adapter.py`, the one module that touches aiocoap's
internals); `client.py` the device operations (`DeviceClient`, with `formats.py`
negotiation and `observe.py`); `coaperrors.py` the translation of aiocoap errors.
`firmware.py`, `fastpath.py` and `push.py` do block-wise firmware delivery, `coapframe.py`
is a CoAP frame codec. The controller composes them; the simulator reuses the codecs.
See docs/contracts.md for the public surface.
"""
