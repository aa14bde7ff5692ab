"""The registration table: live registrations by id and by endpoint, with expiry.

Owned by `Lwm2mServer`; `rd_resources.py` feeds it parsed Register/Update/De-register requests and
the server's sweeper asks it for expired entries. Besides the public `Registration` value
each entry keeps the transport remote the device last spoke from (opaque here), so
requests to the device leave from the server's socket to exactly that address.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace

from reconciler.lwm2m.rd_parsing import RegisterParams, UpdateParams
from reconciler.model.lwm2m import Registration


@dataclass(frozen=True, slots=True)
class Entry:
    registration: Registration
    remote: object  # aiocoap remote of the last Register/Update; requests reuse it
    root_content_format: int | None = None


@dataclass(frozen=True, slots=True)
class Source:
    """Where a Register/Update came from."""

    host: str
    port: int
    remote: object
    secured: bool = False  # inside a DTLS session


@dataclass(frozen=True, slots=True)
class AwaitingSession:
    """The remote of a secured registration restored after our restart. Its DTLS session
    ended with the last run and a server cannot open one to a device, so nothing is
    sent until the device comes back in a new session of its identity (its next
    Update, under the registration id it knows, puts a live remote here)."""

    endpoint: str


class RegistrationTable:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._by_id: dict[str, Entry] = {}
        self._by_endpoint: dict[str, str] = {}

    def register(self, params: RegisterParams, source: Source) -> tuple[Entry, Entry | None]:
        """Add a registration; a known endpoint's old one is replaced (returned second)."""
        old_id = self._by_endpoint.get(params.endpoint)
        old = self._by_id.pop(old_id) if old_id is not None else None
        now = self._clock()
        registration = Registration(
            registration_id=self._new_id(),
            endpoint=params.endpoint,
            host=source.host,
            port=source.port,
            lifetime=params.lifetime,
            lwm2m_version=params.lwm2m_version,
            binding=params.binding,
            queue_mode=params.queue_mode,
            object_links=params.object_links,
            registered_at=now,
            updated_at=now,
            secured=source.secured,
        )
        entry = Entry(registration, source.remote, params.root_content_format)
        self._store(entry)
        return entry, old

    def update(self, registration_id: str, params: UpdateParams, source: Source) -> Entry:
        """Refresh a live registration; KeyError when unknown or already expired."""
        entry = self._live(registration_id)
        reg = entry.registration
        registration = replace(
            reg,
            host=source.host,  # NAT rebinding: the device is now reachable there
            port=source.port,
            lifetime=reg.lifetime if params.lifetime is None else params.lifetime,
            binding=reg.binding if params.binding is None else params.binding,
            queue_mode=reg.queue_mode if params.queue_mode is None else params.queue_mode,
            object_links=reg.object_links if params.object_links is None else params.object_links,
            updated_at=self._clock(),
            secured=source.secured,
        )
        updated = Entry(registration, source.remote, entry.root_content_format)
        self._store(updated)
        return updated

    def restore(self, entry: Entry) -> bool:
        """Put back a registration an earlier run of the server accepted, under the id
        the device knows (so its next Update is accepted, not answered 4.04). False, and
        nothing changed, when it has expired or its endpoint or id is live already."""
        reg = entry.registration
        taken = reg.endpoint in self._by_endpoint or reg.registration_id in self._by_id
        if taken or reg.expires_at <= self._clock():
            return False
        self._store(entry)
        return True

    def deregister(self, registration_id: str) -> Entry:
        """Remove a live registration; KeyError when unknown or already expired."""
        entry = self._live(registration_id)
        self._remove(entry)
        return entry

    def pop_expired(self) -> list[Entry]:
        now = self._clock()
        expired = [e for e in self._by_id.values() if e.registration.expires_at <= now]
        for entry in expired:
            self._remove(entry)
        return expired

    def get(self, endpoint: str) -> Entry | None:
        registration_id = self._by_endpoint.get(endpoint)
        if registration_id is None:
            return None
        entry = self._by_id[registration_id]
        return entry if entry.registration.expires_at > self._clock() else None

    def get_by_id(self, registration_id: str) -> Entry | None:
        """The entry at rd/<id>, expired or not (the caller answers 4.04 for those)."""
        return self._by_id.get(registration_id)

    def entries(self) -> list[Entry]:
        now = self._clock()
        return [e for e in self._by_id.values() if e.registration.expires_at > now]

    def _live(self, registration_id: str) -> Entry:
        entry = self._by_id[registration_id]
        if entry.registration.expires_at <= self._clock():
            raise KeyError(registration_id)
        return entry

    def _store(self, entry: Entry) -> None:
        self._by_id[entry.registration.registration_id] = entry
        self._by_endpoint[entry.registration.endpoint] = entry.registration.registration_id

    def _remove(self, entry: Entry) -> None:
        del self._by_id[entry.registration.registration_id]
        if self._by_endpoint.get(entry.registration.endpoint) == entry.registration.registration_id:
            del self._by_endpoint[entry.registration.endpoint]

    def _new_id(self) -> str:
        while True:
            candidate = secrets.token_hex(4)
            if candidate not in self._by_id:
                return candidate
