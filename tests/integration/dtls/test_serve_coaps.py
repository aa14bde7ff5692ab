"""`fota serve --coaps`: the CoAPs listener runs beside CoAP and /status shows its
counters as `dtls` (here a device whose identity the server does not know)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from controller_harness import DesiredRepo, endpoint, serving, settings_for

from reconciler.simulator.fleet import Fleet
from reconciler.simulator.spec import DeviceSpec
from reconciler.store import open_reader

from .test_secured_devices import FAST


async def test_status_counts_the_coaps_listener(tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    state = tmp_path / "s.db"
    settings = settings_for(repo, state, coaps="127.0.0.1:0")
    stranger = DeviceSpec(endpoint(0), version="1.0", psk=(b"who-knows", b"some-key"))
    async with serving(settings) as running:
        assert running.coaps_port
        fleet = Fleet(f"coaps://127.0.0.1:{running.coaps_port}", [stranger], None, FAST)
        await fleet.start()
        reader = open_reader(state)
        try:
            async with asyncio.timeout(15):  # another task writes it: nothing to await
                while not reader.dtls_status().get("unknown_identities"):
                    await asyncio.sleep(0.05)
        finally:
            reader.close()
            await fleet.stop(deregister=False)
        async with httpx.AsyncClient() as client:
            status = (await client.get(f"http://127.0.0.1:{running.http_port}/status")).json()
    dtls = status["dtls"]
    assert dtls["unknownIdentities"] >= 1 and dtls["handshakeFailures"] >= 1
    assert dtls["sessions"] == 0 and dtls["handshakes"] == 0
