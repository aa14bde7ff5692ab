"""The aiocoap adapter is pinned: it was read against these aiocoap versions only, and every
private attribute it touches exists on a real server context's udp6 socket."""

from __future__ import annotations

import aiocoap.meta
from aiocoap import Context, resource
from aiocoap.pipe import Pipe

from reconciler.lwm2m.aiocoap_adapter import CHECKED_AIOCOAP_VERSIONS, udp_sockets, version_checked


def test_the_installed_aiocoap_is_a_version_the_adapter_was_checked_against() -> None:
    assert version_checked(), (
        f"aiocoap {aiocoap.meta.version} is not in CHECKED_AIOCOAP_VERSIONS "
        f"{sorted(CHECKED_AIOCOAP_VERSIONS)}: re-read aiocoap/messagemanager.py and "
        "aiocoap/transports/udp6.py against reconciler/lwm2m/aiocoap_adapter.py, then add it"
    )


async def test_every_private_attribute_the_adapter_touches_exists() -> None:
    context = await Context.create_server_context(
        resource.Site(), bind=("127.0.0.1", 0), transports=["udp6"])
    try:
        sockets = udp_sockets(context)
        assert len(sockets) == 1
        mman = sockets[0]._mman
        interface = sockets[0]._interface
        assert isinstance(mman._recent_messages, dict)
        assert isinstance(mman._active_exchanges, dict) and isinstance(mman._backlogs, dict)
        assert isinstance(mman.token_manager.outgoing_requests, dict)
        for owner, name in ((mman, "_deduplicate_message"),
                            (mman, "_store_response_for_duplicates"),
                            (mman, "send_message"), (mman, "_continue_backlog"),
                            (mman, "_add_exchange"), (mman, "_schedule_retransmit"),
                            (mman, "_remove_exchange"),
                            (mman.token_manager, "dispatch_error"), (Pipe, "add_exception"),
                            (interface, "datagram_msg_received"),
                            (interface, "error_received"),
                            (interface._ctx, "dispatch_message"),
                            (interface.transport, "sendmsg"),
                            (interface.transport, "_read_ready")):
            assert callable(getattr(owner, name, None)), f"{type(owner).__name__}.{name}"
        assert sockets[0].socket.getsockname()[0] in ("127.0.0.1", "::ffff:127.0.0.1")
    finally:
        await context.shutdown()
