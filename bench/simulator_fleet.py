"""Simulator fleet cost: N simulated devices in one process, printed as one JSON object.

Starts `Lwm2mServer` in a child process on a loopback port (so its cost is not counted),
then a `Fleet` of `--devices` simulated clients here: time until all are registered, a
round of registration Updates from every device (64 in flight) and the time to stop
(De-register) them all. Reports this process's RSS per device and CPU seconds per phase,
which is what it costs to simulate a device (the server's side is bench/registrations.py).

`--registrar N` then runs the registrations-only `Registrar` with N endpoints over 64
sockets against a fresh server (Register, Update, De-register rounds), the mode for the
100,000-endpoint loads.

`--update-cycle N` finally drives N devices through a whole pull update (write /5/0/1,
Block2 download of a 16 KB image in 512-byte blocks, Execute, reboot, re-register on the
new version) with the server in this process (64 devices at a time): wall time for all.

    .venv/bin/python bench/simulator_fleet.py [--devices 1000] [--registrar 20000]
        [--update-cycle 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.lwm2m import FW_PACKAGE_URI, FW_UPDATE, FirmwareState
from reconciler.simulator import DeviceSpec, Fleet, SimDevice, Timing, make_package
from reconciler.simulator.registration_load import Registrar

SERVER = """
import asyncio, sys
from reconciler.lwm2m.server import Lwm2mServer
async def main():
    server = Lwm2mServer("127.0.0.1", 0)
    await server.start()
    print(server.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    print(len(server.registrations()), flush=True)
    await server.stop()
asyncio.run(main())
"""


def rss_kb() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def cpu() -> float:
    times = os.times()
    return times.user + times.system


async def phase(name: str, results: dict[str, Any], work: Any) -> None:
    wall, used = time.perf_counter(), cpu()
    await work
    results[f"{name}_seconds"] = round(time.perf_counter() - wall, 3)
    results[f"{name}_cpu_seconds"] = round(cpu() - used, 3)


async def update_round(fleet: Fleet, batch: int = 64) -> None:
    """Every device sends one registration Update, `batch` at a time."""
    devices = fleet.devices()
    before = {d.endpoint: d.updates for d in devices}
    for start in range(0, len(devices), batch):
        chosen = devices[start:start + batch]
        for device in chosen:
            device.trigger_update()
        await fleet.wait_all(lambda d: d.updates > before[d.endpoint], 60, chosen)


def start_server() -> tuple[subprocess.Popen[str], int]:
    child = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    return child, int(child.stdout.readline())


def stop_server(child: subprocess.Popen[str]) -> int:
    """Ask the server how many registrations it still holds, then end it."""
    assert child.stdin is not None and child.stdout is not None
    child.stdin.close()
    left = int(child.stdout.readline())
    child.wait(10)
    return left


async def registrar_rounds(endpoints: int) -> dict[str, Any]:
    child, port = start_server()
    try:
        names = [f"bulk-{i:06d}" for i in range(endpoints)]
        registrar = Registrar(("127.0.0.1", port), names, sockets=64, in_flight=256)
        await registrar.open()
        results: dict[str, Any] = {"registrar_endpoints": endpoints}
        try:
            for name, work in (("register", registrar.register_all),
                               ("update", registrar.update_all),
                               ("deregister", registrar.deregister_all)):
                used = cpu()
                stats = await work()
                results[f"registrar_{name}_per_second"] = round(stats.per_second, 1)
                results[f"registrar_{name}_failed"] = stats.failed
                results[f"registrar_{name}_cpu_seconds"] = round(cpu() - used, 2)
        finally:
            registrar.close()
        results["registrar_server_registrations_left"] = stop_server(child)
        return results
    finally:
        child.kill()
        child.wait()


async def update_cycle(devices: int) -> dict[str, Any]:
    server = Lwm2mServer("127.0.0.1", 0)
    await server.start()
    image = make_package("2.0.0", os.urandom(16 * 1024))
    specs = [DeviceSpec(f"upd-{i:05d}", version="1.0.0", lifetime=3600) for i in range(devices)]
    fleet = Fleet(f"coap://127.0.0.1:{server.port}", specs,
                  timing=Timing(update_every=3600, install_delay=0.01, reboot_delay=0.01))
    gate = asyncio.Semaphore(64)

    async def one(device: SimDevice) -> None:
        async with gate:
            client = server.client(device.endpoint)
            uri = server.offer_firmware(device.endpoint, "img-2", image)
            await client.write(FW_PACKAGE_URI, uri, timeout=60)
            await device.wait_state(FirmwareState.DOWNLOADED, timeout=120)
            await client.execute(FW_UPDATE, timeout=60)
            await device.wait_version("2.0.0", timeout=60)

    try:
        await fleet.start(wait_registered=True, timeout=120)
        wall, used = time.perf_counter(), cpu()
        await asyncio.gather(*(one(d) for d in fleet.devices()))
        seconds = time.perf_counter() - wall
        return {"update_cycle_devices": devices,
                "update_cycle_seconds": round(seconds, 2),
                "update_cycle_cpu_seconds": round(cpu() - used, 2),
                "update_cycle_blocks_per_second": round(
                    devices * -(-len(image) // 512) / seconds, 1),
                "update_cycle_all_on_new_version": all(
                    d.version == "2.0.0" for d in fleet.devices())}
    finally:
        await fleet.stop()
        await server.stop()


async def run(devices: int) -> dict[str, Any]:
    child, port = start_server()
    try:
        results: dict[str, Any] = {"devices": devices, "rss_kb_before": rss_kb()}
        specs = [DeviceSpec(f"bench-{i:06d}", lifetime=3600) for i in range(devices)]
        fleet = Fleet(f"coap://127.0.0.1:{port}", specs, timing=Timing(update_every=3600))
        await phase("register", results,
                    fleet.start(wait_registered=True, timeout=120))
        results["rss_kb_registered"] = rss_kb()
        results["rss_kb_per_device"] = round(
            (results["rss_kb_registered"] - results["rss_kb_before"]) / devices, 2)
        await phase("update_round", results, update_round(fleet))
        await phase("stop", results, fleet.stop())
        results["server_registrations_left"] = stop_server(child)
        results["registers_per_second"] = round(devices / results["register_seconds"], 1)
        return results
    finally:
        child.kill()
        child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--registrar", type=int, default=20000, metavar="ENDPOINTS",
                        help="endpoints for the registrations-only phase (0: skip)")
    parser.add_argument("--update-cycle", type=int, default=200, metavar="DEVICES",
                        help="devices for the full pull-update phase (0: skip)")
    args = parser.parse_args()
    results = asyncio.run(run(args.devices))
    if args.registrar:
        results.update(asyncio.run(registrar_rounds(args.registrar)))
    if args.update_cycle:
        results.update(asyncio.run(update_cycle(args.update_cycle)))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
