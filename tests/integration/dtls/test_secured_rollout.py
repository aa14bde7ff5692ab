"""End to end (issue 12): a secured fleet of simulated devices completes a rollout driven by
the real controller over the CoAPs listener: every Register, read, write, Execute and
download inside DTLS-PSK sessions, the package URIs `coaps://`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from controller_harness import (
    SIM_TIMING,
    DesiredRepo,
    all_in,
    endpoint,
    settings_for,
    until,
)

from reconciler.controller.core import Controller
from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.status import UpdateState
from reconciler.simulator.fleet import Fleet
from reconciler.simulator.spec import DeviceSpec
from reconciler.sources import GitSource
from reconciler.store import open_store

from .conftest import secured

COUNT = 3


async def test_a_secured_fleet_completes_a_rollout(tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=COUNT)
    keys = {f"id-{n}".encode(): (f"key-{n}".encode(), endpoint(n)) for n in range(COUNT)}
    settings = settings_for(repo, tmp_path / "state.db")
    source = GitSource(str(repo.root), "main", cache_dir=tmp_path / "cache")
    desired = source.sync()
    assert desired is not None
    store = open_store(tmp_path / "state.db")
    server = Lwm2mServer("127.0.0.1", 0, coaps=("127.0.0.1", 0), psk=keys.get,
                         register_check=secured, awake_seconds=settings.awake_window)
    controller = Controller(store, server, source.image, settings.controller, time.time)
    await controller.set_desired(desired)
    await server.start()
    unsubscribe = server.subscribe(controller.on_registration)
    controller.restore()
    stop = asyncio.Event()
    loop = asyncio.create_task(controller.run(stop))
    specs = [DeviceSpec(endpoint(n), version="1.0", block_size=512, lifetime=60,
                        psk=(f"id-{n}".encode(), f"key-{n}".encode())) for n in range(COUNT)]
    fleet = Fleet(f"coaps://127.0.0.1:{server.coaps_port}", specs, None, SIM_TIMING)
    try:
        await fleet.start(wait_registered=True, timeout=30)
        repo.set_target("2.0")
        new = await asyncio.to_thread(source.sync)
        assert new is not None
        await controller.set_desired(new)
        await until(controller, all_in(controller, UpdateState.CURRENT), timeout=60)
        assert set(fleet.versions().values()) == {"2.0"}
        assert all(d.downloads >= 1 for d in fleet.devices())
        status = server.dtls_status()
        assert status is not None and status["handshake_failures"] == 0
        assert status["handshakes"] >= 3 * COUNT  # Register, download, Register after reboot
    finally:
        await fleet.stop()
        stop.set()
        await asyncio.wait_for(loop, 20)
        unsubscribe()
        await server.stop()
        store.close()
