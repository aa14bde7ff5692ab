"""The LwM2M wire layer: the only package of ours that imports aiocoap.

`codecs/` holds the pure content-format codecs (TLV, text, opaque, SenML JSON/CBOR, LwM2M
JSON, link format). `server.py` is the server endpoint (`Lwm2mServer`). The registration
interface (OMA's "rd", resource directory) is three modules: `rd_resources.py` (the
aiocoap resources at /rd), `rd_parsing.py` (pure parsing of Register/Update) and
`rd_table.py` (the live registrations). Send is `send.py` (`POST /dp`), queue mode
`queue.py`; `hardening.py` bounds and hardens aiocoap's message layer, through
`aiocoap_adapter.py`, the one module that touches aiocoap's internals. `client.py` holds
the device operations (`DeviceClient`, with `formats.py` negotiation and `observe.py`),
`coaperrors.py` the translation of aiocoap errors. `firmware.py`, `fastpath.py` (with
`batchio.py`: recvmmsg/sendmmsg) and `push.py` do block-wise firmware delivery;
`deliveries.py` and `pushes.py` tell the engine when a package arrived or a push stopped;
`coapframe.py` is a CoAP frame codec. CoAPs (DTLS-PSK) is `dtls_transport.py` (the
listener under aiocoap) over the small interface of `dtls_binding.py`, implemented on
tinydtls by `dtls_tinydtls.py`. The controller composes them; the simulator reuses the
codecs and the frame codec. See docs/contracts.md for the public surface.
"""
