"""The registration interface's aiocoap resources: `POST /rd`, `POST|DELETE /rd/<id>`.

`Lwm2mServer` mounts `RegisterResource` and `EntryResource` at `rd` on its site. They read
the request (query, payload, source address), let `rd_parsing.py` parse it, apply it to
the `RegistrationTable` and hand an event to the server's `emit`. Every refusal is a CoAP error
with a diagnostic payload; anything unexpected is logged and answered 5.00, never raised.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from aiocoap import Message, resource
from aiocoap.numbers.codes import Code

from reconciler.lwm2m.coaperrors import error_response
from reconciler.lwm2m.departures import same_remote
from reconciler.lwm2m.rd_parsing import Rejected, parse_register, parse_update, split_query
from reconciler.lwm2m.rd_table import AwaitingSession, Entry, RegistrationTable, Source
from reconciler.model.lwm2m import RegistrationEventKind

log = logging.getLogger(__name__)

Emit = Callable[[RegistrationEventKind, Entry], None]
Moved = Callable[[Entry, Entry], None]  # (the endpoint's entry before, its entry now)
Ready = Callable[[], Awaitable[None]]
# (endpoint, PSK identity of the request's DTLS session or None) -> reason to refuse or None
RegisterCheck = Callable[[str, "bytes | None"], "str | None"]


async def at_once() -> None:
    return None


class RdService:
    """What Register/Update/De-register do, apart from CoAP framing."""

    def __init__(self, registry: RegistrationTable, admit: Callable[[str], bool],
                 emit: Emit, ready: Ready = at_once, *,
                 check: RegisterCheck | None = None, moved: Moved | None = None) -> None:
        self.registry = registry
        self._check = check
        # Told, before the event, when an endpoint's Register/Update comes from another
        # address than its last one (the server ends requests waiting at the old one)
        self._moved = moved
        # Updates that came in another DTLS session than the registration's last one: the
        # device's address changed (NAT rebinding, a new socket) and it did a new handshake
        self.rebindings = 0
        # Security refusals by reason (a small fixed set: /status and /metrics)
        self.refusals: Counter[str] = Counter()
        # Secured registrations restored after our restart that came back in a new
        # session with their next Update
        self.resumed = 0
        self._admit = admit
        self._emit = emit
        self.ready = ready  # awaited before a request is looked at (a restart restoring)

    def register(self, request: Message) -> Message:
        query = split_query(request.opt.uri_query)
        params = parse_register(query, request.payload, _content_format(request))
        self._secured(params.endpoint, request.remote)
        if not self._admit(params.endpoint):
            raise Rejected("4.03", f"endpoint {params.endpoint!r} is not admitted")
        entry, replaced = self.registry.register(params, source_of(request))
        if replaced is not None:
            self._tell_moved(replaced, entry)
        self._emit(RegistrationEventKind.REGISTERED, entry)
        location = ("rd", entry.registration.registration_id)
        return Message(code=Code.CREATED, location_path=location)

    def update(self, registration_id: str, request: Message) -> Message:
        query = split_query(request.opt.uri_query)
        params = parse_update(query, request.payload, _content_format(request))
        self._same_channel(registration_id, request.remote)
        before = self.registry.get_by_id(registration_id)
        if before is not None and isinstance(before.remote, AwaitingSession):
            self.resumed += 1
        elif before is not None and getattr(request.remote, "identity", None) is not None \
                and before.remote is not request.remote:
            self.rebindings += 1
        try:
            entry = self.registry.update(registration_id, params, source_of(request))
        except KeyError:
            raise Rejected("4.04", f"no registration rd/{registration_id}") from None
        if before is not None:
            self._tell_moved(before, entry)
        self._emit(RegistrationEventKind.UPDATED, entry)
        return Message(code=Code.CHANGED)

    def deregister(self, registration_id: str, remote: object = None) -> Message:
        self._same_channel(registration_id, remote)
        try:
            entry = self.registry.deregister(registration_id)
        except KeyError:
            raise Rejected("4.04", f"no registration rd/{registration_id}") from None
        self._emit(RegistrationEventKind.DEREGISTERED, entry)
        return Message(code=Code.DELETED)

    def _secured(self, endpoint: str, remote: object) -> None:
        """Issue 12 item 3: a DTLS session registers only the endpoint its identity is
        bound to, and the security policy may refuse plain CoAP (or an identity)."""
        identity = getattr(remote, "identity", None)
        bound = getattr(remote, "endpoint", None)
        if identity is not None and bound != endpoint:
            self.refusals["identity_mismatch"] += 1
            log.warning("PSK identity %r (bound to %r) tried to register as %r: 4.03",
                        identity, bound, endpoint)
            raise Rejected("4.03", f"this DTLS identity may not register {endpoint!r}")
        reason = None if self._check is None else self._check(endpoint, identity)
        if reason is not None:
            self.refusals["plain_coap" if identity is None else "identity_mismatch"] += 1
            log.warning("Register of %r refused (identity %r): %s", endpoint, identity, reason)
            raise Rejected("4.03", reason)

    def _tell_moved(self, before: Entry, now: Entry) -> None:
        if self._moved is not None and not same_remote(before.remote, now.remote):
            self._moved(before, now)

    def _same_channel(self, registration_id: str, remote: object) -> None:
        """Update and De-register of a registration made inside a DTLS session come
        from a session of the same identity; one made over plain CoAP, over plain CoAP."""
        entry = self.registry.get_by_id(registration_id)
        if entry is None:
            return  # 4.04 follows
        if not _same_context(entry, remote):
            self.refusals["security_context"] += 1
            log.warning("rd/%s of %r from another security context: 4.03", registration_id,
                        entry.registration.endpoint)
            raise Rejected("4.03", "not the security context this registration was made in")


def _same_context(entry: Entry, remote: object) -> bool:
    identity = getattr(remote, "identity", None)
    if isinstance(entry.remote, AwaitingSession):
        # restored after our restart: a session of the identity bound to this endpoint
        # takes it back (the identity binds the endpoint); plain CoAP never does
        return identity is not None \
            and getattr(remote, "endpoint", None) == entry.registration.endpoint
    return identity == getattr(entry.remote, "identity", None)


def source_of(request: Message) -> Source:
    """The device's address as the registration records it (IPv4-mapped shown as IPv4)."""
    sockaddr = request.remote.sockaddr
    host = str(sockaddr[0])
    host = host.removeprefix("::ffff:") if "." in host else host
    return Source(host=host, port=int(sockaddr[1]), remote=request.remote,
                  secured=getattr(request.remote, "identity", None) is not None)


def _content_format(request: Message) -> int | None:
    value = request.opt.content_format
    return None if value is None else int(value)


async def _guarded(handler: Callable[[], Message | Awaitable[Message]]) -> Message:
    try:
        result = handler()
        return result if isinstance(result, Message) else await result
    except Rejected as refused:
        return error_response(refused.code, refused.message)
    except Exception:
        log.exception("registration interface failed on a request")
        return error_response("5.00", "internal server error")


class RegisterResource(resource.Resource):  # type: ignore[misc]  # aiocoap is untyped
    """`/rd`: Register."""

    def __init__(self, service: RdService) -> None:
        super().__init__()
        self._service = service

    async def render_post(self, request: Message) -> Message:
        await self._service.ready()
        return await _guarded(lambda: self._service.register(request))


class EntryResource(resource.Resource, resource.PathCapable):  # type: ignore[misc]
    """`/rd/<id>`: Update (POST) and De-register (DELETE)."""

    def __init__(self, service: RdService) -> None:
        super().__init__()
        self._service = service

    async def render(self, request: Message) -> Message:
        await self._service.ready()
        return await _guarded(lambda: self._dispatch(request))

    def _dispatch(self, request: Message) -> Message:
        path = request.opt.uri_path
        if len(path) != 1 or not path[0]:
            raise Rejected("4.04", "no such registration location")
        if request.code == Code.POST:
            return self._service.update(path[0], request)
        if request.code == Code.DELETE:
            return self._service.deregister(path[0], request.remote)
        raise Rejected("4.05", "registration locations take POST (Update) or DELETE")
