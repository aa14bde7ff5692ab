"""The client side of the LwM2M registration interface, as messages: pure builders.

Register (`POST /rd?ep=&lt=&lwm2m=&b=[&Q]` with the object links), Update (`POST` to the
Location-Path the server gave, parameters only when they changed) and De-register
(`DELETE` on it). The binding follows the client's version: 1.0 says queue mode with
`b=UQ`, 1.1 and 1.2 with the `Q` parameter. Called by `device`.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiocoap import DELETE, POST, Message

from reconciler.lwm2m.codecs import ContentFormat
from reconciler.simulator.objects import register_links


def binding_of(lwm2m_version: str, queue_mode: bool) -> str:
    """The binding the client states in Object 1 and (1.0) the `b` parameter."""
    return "UQ" if queue_mode and lwm2m_version == "1.0" else "U"


def register_query(endpoint: str, lifetime: int, lwm2m_version: str,
                   queue_mode: bool) -> tuple[str, ...]:
    query = [f"ep={endpoint}", f"lt={lifetime}", f"lwm2m={lwm2m_version}",
             f"b={binding_of(lwm2m_version, queue_mode)}"]
    if queue_mode and lwm2m_version != "1.0":
        query.append("Q")
    return tuple(query)


def register_message(endpoint: str, lifetime: int, lwm2m_version: str,
                     queue_mode: bool) -> Message:
    return Message(code=POST, uri_path=("rd",),
                   uri_query=register_query(endpoint, lifetime, lwm2m_version, queue_mode),
                   content_format=int(ContentFormat.LINK_FORMAT),
                   payload=register_links(lwm2m_version).encode())


def update_message(location: Sequence[str], lifetime: int | None = None) -> Message:
    """A registration Update; `lifetime` only when it changed since the last one."""
    query = (f"lt={lifetime}",) if lifetime is not None else ()
    return Message(code=POST, uri_path=tuple(location), uri_query=query)


def deregister_message(location: Sequence[str]) -> Message:
    return Message(code=DELETE, uri_path=tuple(location))
