"""The registrations-only `Registrar`: many endpoints over a few sockets."""

from __future__ import annotations

from typing import Any

from reconciler.simulator.registration_load import Registrar


async def test_the_registrar_registers_updates_and_de_registers_every_endpoint(
        server: Any) -> None:
    endpoints = [f"bulk-{i:04d}" for i in range(300)]
    registrar = Registrar(("127.0.0.1", server.port), endpoints, sockets=4, in_flight=32,
                          lifetime=600)
    await registrar.open()
    try:
        registered = await registrar.register_all()
        assert (registered.ok, registered.failed) == (300, 0)
        assert {r.endpoint for r in server.regs.values()} == set(endpoints)
        assert len({r.hostinfo for r in server.regs.values()}) == 4
        assert {r.query["lt"] for r in server.regs.values()} == {"600"}
        updated = await registrar.update_all()
        assert (updated.ok, updated.failed) == (300, 0)
        assert server.count("update", "bulk-0299") == 1
        removed = await registrar.deregister_all()
        assert (removed.ok, removed.failed, server.regs) == (300, 0, {})
    finally:
        registrar.close()
