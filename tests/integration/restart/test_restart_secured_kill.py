"""`kill -9` of a real `fota serve --coaps` and a restart (issue 12: restart behaviour of
secured devices). The killed server's DTLS sessions are gone and it could not tell the
devices; the restarted one restores their registrations waiting for a session and sends
them nothing. Each device's next Update times out in its stale session, goes again in a
new one, and resumes its registration: the rollout the restart found pending then runs,
with no Register forced by the restart."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from controller_harness import SIM_TIMING, DesiredRepo, endpoint
from serve_process import fota_serve, free_udp_port, until_all_current

from reconciler.simulator import DeviceSpec, Fleet
from reconciler.simulator.coap import Reliability
from reconciler.store import open_reader

pytestmark = pytest.mark.slow

COUNT = 3
# No Update unless told; a lost session is noticed after one retransmission.
QUIET = replace(SIM_TIMING, update_every=600.0,
                reliability=Reliability(ack_timeout=0.5, max_retransmit=1))


async def test_secured_devices_resume_in_new_sessions_after_kill_9(tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=COUNT)
    keys = {n: (f"id-{n}".encode(), f"key-{n}".encode()) for n in range(COUNT)}
    creds = tmp_path / "creds.csv"
    creds.write_text("identity,key,endpoint\n" + "".join(
        f"{i.decode()},{k.hex()},{endpoint(n)}\n" for n, (i, k) in keys.items()))
    state, port, coaps = tmp_path / "s.db", free_udp_port(), free_udp_port()
    env = {"FOTA_COAPS": f"127.0.0.1:{coaps}", "FOTA_CREDENTIALS": str(creds),
           "FOTA_SECURITY_DEFAULT": "psk"}
    devices = [DeviceSpec(endpoint(n), version="1.0", block_size=512, lifetime=900,
                          psk=keys[n]) for n in range(COUNT)]
    fleet = Fleet(f"coaps://127.0.0.1:{coaps}", devices, timing=QUIET)
    try:
        async with fota_serve(repo.root, state, port, env=env) as first:
            await fleet.start(wait_registered=True, timeout=60)
            first.kill()
        repo.set_target("2.0")  # what the restarted server finds to do
        async with fota_serve(repo.root, state, port, env=env):
            for device in fleet.devices():
                device.trigger_update()  # its Update: in the stale session, then a new one
            await fleet.wait_all(lambda d: d.version == "2.0", timeout=60)
            await until_all_current(state, COUNT, timeout=60)
            reader = open_reader(state)
            try:  # the child writes its counters every 2 s: poll, as for the states
                async with asyncio.timeout(20):
                    while reader.dtls_status().get("resumed") != COUNT:
                        await asyncio.sleep(0.05)
                restart, dtls = reader.restart_status(), reader.dtls_status()
            finally:
                reader.close()
    finally:
        await fleet.stop(deregister=False)  # the server is gone: De-registering only waits out
        # Timing.deregister_timeout (3 s) for nothing
    assert restart["registrations"] == COUNT
    # one Register before the kill, one after the new firmware booted: the restart
    # forced none, each device came back with its Update
    assert [d.registrations for d in fleet.devices()] == [2] * COUNT
    assert all(d.updates >= 1 for d in fleet.devices())
    assert dtls["resumed"] == COUNT and dtls["awaiting_session"] == 0, dtls
