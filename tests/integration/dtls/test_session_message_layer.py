"""The CoAPs listener's message layer is hardened as udp6's is: duplicates are answered
from the bounded cache (not aiocoap's ~2.6 KB per exchange), and a request abandoned at
our own timeout leaves the wire at once instead of being retransmitted for 93 s with the
device's later requests queued behind it (NSTART = 1)."""

from __future__ import annotations

import pytest

from reconciler.errors import DeviceTimeout
from reconciler.lwm2m.aiocoap_adapter import message_layers
from reconciler.lwm2m.dtls_transport import DtlsMessageInterface
from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.lwm2m import Path
from reconciler.simulator.fleet import Fleet
from reconciler.simulator.spec import DeviceSpec

from .conftest import KEYS, until
from .test_secured_devices import FAST


async def test_a_request_abandoned_in_a_session_leaves_the_wire(server: Lwm2mServer) -> None:
    [layer] = message_layers(server.context, DtlsMessageInterface)
    mman = layer._mman  # the adapter's private handle: what the hooks replaced
    assert mman._deduplicate_message.__self__ in server._caches  # our bounded cache
    fleet = Fleet(f"coaps://127.0.0.1:{server.coaps_port}",
                  [DeviceSpec("urn:dev:1", psk=(b"dev-1", KEYS[b"dev-1"][0]))], None, FAST)
    await fleet.start(wait_registered=True, timeout=20)
    try:
        client = server.client("urn:dev:1")
        assert (await client.read(Path(3, 0, 3), timeout=10))[Path(3, 0, 3)] == "1.0.0"
        fleet.device("urn:dev:1").go_silent()
        with pytest.raises(DeviceTimeout):
            await client.read(Path(3, 0, 3), timeout=0.5)
        # withdrawn once the cancellation ran (a loop turn or two): aiocoap alone would
        # keep retransmitting it for up to 93 s, the device's later requests behind it
        await until(lambda: not mman._active_exchanges, timeout=2.0)
    finally:
        await fleet.stop(deregister=False)
