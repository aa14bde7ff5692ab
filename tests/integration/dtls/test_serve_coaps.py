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


async def test_a_reload_that_drops_an_identity_closes_its_session(tmp_path: Path) -> None:
    """The whole path: the credentials file rewritten without an identity, the reloader
    (watching the file), serve's revoke_on_reload, the listener: the session is closed at
    once, counted as revoked, and the device's next handshake finds no key."""
    repo = DesiredRepo(tmp_path / "repo", count=2)
    creds = tmp_path / "creds.csv"
    line = "id-{n},{key},{ep}\n"
    keys = {n: f"key-{n}".encode() for n in range(2)}
    rows = {n: line.format(n=n, key=keys[n].hex(), ep=endpoint(n)) for n in range(2)}
    creds.write_text("identity,key,endpoint\n" + rows[0] + rows[1])
    settings = settings_for(repo, tmp_path / "s.db", coaps="127.0.0.1:0", credentials=creds)
    specs = [DeviceSpec(endpoint(n), version="1.0", psk=(f"id-{n}".encode(), keys[n]))
             for n in range(2)]
    async with serving(settings) as running, httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{running.http_port}") as http:
        fleet = Fleet(f"coaps://127.0.0.1:{running.coaps_port}", specs, None, FAST)
        await fleet.start(wait_registered=True, timeout=20)
        try:
            creds.write_text("identity,key,endpoint\n" + rows[1])  # id-0 removed
            async with asyncio.timeout(15):  # the reloader's task: no event to await here
                while 'reason="revoked"} 1.0' not in (await http.get("/metrics")).text:
                    await asyncio.sleep(0.05)
            text = (await http.get("/metrics")).text
            assert "fota_dtls_sessions 1.0" in text  # id-1's session stays
            gone = fleet.device(endpoint(0))
            gone.trigger_update()  # a new handshake as id-0: no key for it any more
            async with asyncio.timeout(15):
                while 'reason="unknown_identity"} 0.0' in (await http.get("/metrics")).text:
                    await asyncio.sleep(0.05)
        finally:
            await fleet.stop(deregister=False)
