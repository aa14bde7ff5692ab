"""The Information Reporting interface's Send operation: `POST /dp` (LwM2M 1.1 and 1.2).

`Lwm2mServer` mounts `SendResource` at `dp` on its site and feeds `AddressBook` its
registration events. A Send belongs to the live registration whose registered address
(host, port) is the request's source; its SenML JSON (110) or SenML CBOR (112) pack names
full paths (decoded by `codecs.senml.decode_senml`, the one SenML decoder). The decoded
{Path: Value} goes to the server's `deliver` and the device gets 2.04 Changed. Refusals
carry a diagnostic: 4.04 for a source with no registration or an Object the registration
does not list (OMA 1.1 core Table 5.1-1 gives Send only 2.04, 4.00, 4.04), 4.15 for any
other content format (LwM2M-CBOR 11544 too), 4.00 for a payload that does not decode;
anything unexpected is logged and answered 5.00, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiocoap import Message, resource
from aiocoap.numbers.codes import Code

from reconciler.lwm2m.coaperrors import error_response
from reconciler.lwm2m.codecs import CodecError, ContentFormat, Value
from reconciler.lwm2m.codecs.senml import decode_senml
from reconciler.lwm2m.rd_parsing import Rejected
from reconciler.lwm2m.rd_resources import Ready, at_once, source_of
from reconciler.model.lwm2m import Path, Registration, RegistrationEvent, RegistrationEventKind

log = logging.getLogger(__name__)

Address = tuple[str, int]
Deliver = Callable[[str, dict[Path, Value]], None]
SEND_FORMATS = (ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR)
_LIVE = (RegistrationEventKind.REGISTERED, RegistrationEventKind.UPDATED)


class AddressBook:
    """Which endpoints last registered or updated from which address, newest last.

    An index, not the truth: `sender` confirms against the registry, so a registration
    that expired without its event being seen yet is never matched."""

    def __init__(self) -> None:
        self._at: dict[Address, dict[str, None]] = {}
        self._of: dict[str, Address] = {}

    def track(self, event: RegistrationEvent) -> None:
        endpoint = event.registration.endpoint
        self._drop(endpoint)
        if event.kind in _LIVE:
            address = (event.registration.host, event.registration.port)
            self._of[endpoint] = address
            self._at.setdefault(address, {})[endpoint] = None

    def sender(
        self, address: Address, live: Callable[[str], Registration | None]
    ) -> Registration | None:
        """The live registration at `address`; when several share it (a NAT gave the
        address to another device), the one that spoke from it most recently."""
        for endpoint in reversed(self._at.get(address, {})):
            registration = live(endpoint)
            if registration is not None and (registration.host, registration.port) == address:
                return registration
        return None

    def _drop(self, endpoint: str) -> None:
        address = self._of.pop(endpoint, None)
        if address is None:
            return
        endpoints = self._at[address]
        endpoints.pop(endpoint, None)
        if not endpoints:
            del self._at[address]


# --- the payload: pure ---------------------------------------------------------------


def decode_send(content_format: int | None, payload: bytes) -> dict[Path, Value]:
    """The values of a Send payload; `Rejected` 4.15 or 4.00 when it cannot be read."""
    if content_format not in SEND_FORMATS:
        raise Rejected("4.15", f"Send takes SenML JSON (110) or SenML CBOR (112), "
                               f"not content format {content_format}")
    if not payload:
        raise Rejected("4.00", "Send without a payload")
    cbor = content_format == ContentFormat.SENML_CBOR
    try:
        values = decode_senml(payload, cbor=cbor, base=None)
    except CodecError as exc:
        raise Rejected("4.00", f"malformed Send payload: {exc}") from None
    if not values:
        raise Rejected("4.00", "Send carries no resource values")
    return values


def check_objects(registration: Registration, values: dict[Path, Value]) -> None:
    """Every value must belong to an Object the device registered (else 4.04)."""
    registered = {Path.parse(link).object_id for link in registration.object_links}
    unknown = sorted({path.object_id for path in values} - registered)
    if unknown:
        raise Rejected("4.04", f"Object(s) {', '.join(map(str, unknown))} not registered "
                               f"by {registration.endpoint}")


# --- the CoAP side -------------------------------------------------------------------


class SendService:
    """What Send does, apart from CoAP framing."""

    def __init__(self, book: AddressBook, live: Callable[[str], Registration | None],
                 deliver: Deliver, ready: Ready = at_once) -> None:
        self._book = book
        self._live = live
        self._deliver = deliver
        self.ready = ready  # awaited before a Send is looked at (a restart restoring)

    def send(self, request: Message) -> Message:
        source = source_of(request)
        registration = self._book.sender((source.host, source.port), self._live)
        if registration is None:
            raise Rejected("4.04", f"no registration from {source.host}:{source.port}; "
                                   "Register before Send")
        fmt = request.opt.content_format
        values = decode_send(None if fmt is None else int(fmt), request.payload)
        check_objects(registration, values)
        self._deliver(registration.endpoint, values)
        return Message(code=Code.CHANGED)


class SendResource(resource.Resource):  # type: ignore[misc]  # aiocoap is untyped
    """`/dp`: Send (POST only; aiocoap answers other methods 4.05)."""

    def __init__(self, service: SendService) -> None:
        super().__init__()
        self._service = service

    async def render_post(self, request: Message) -> Message:
        await self._service.ready()
        try:
            return self._service.send(request)
        except Rejected as refused:
            return error_response(refused.code, refused.message)
        except Exception:
            log.exception("Send failed on a request")
            return error_response("5.00", "internal server error")
