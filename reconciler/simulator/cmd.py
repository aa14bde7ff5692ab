"""`fota simulate`: run a fleet of simulated devices against an LwM2M server until Ctrl-C.

Devices are the endpoints declared in the repo's manifests (or `--count N` generated
ones, `sim-00000`...), starting from `--version` or else their collection's oldest image;
the image catalog (sha256 -> version) comes from the same manifests. Faults are spread
with `--fault KIND:SHARE`. `--registrar` runs registrations only, many endpoints per
socket (see `registration_load`). Wired into `reconciler.cli` as the `simulate` subcommand.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Coroutine, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from reconciler.model.lwm2m import DeliveryMethod
from reconciler.simulator import manifests
from reconciler.simulator.faults import Fault, assign_faults, parse_fault_share
from reconciler.simulator.fleet import Fleet, parse_server_uri, resolve_server
from reconciler.simulator.psk_file import Psk, read_psk_file
from reconciler.simulator.registration_load import Registrar, RoundStats
from reconciler.simulator.spec import DeviceSpec, Timing

STOP_SECONDS = 3.0  # a signalled `fota simulate` gives de-registering this long


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", required=True,
                        help="coap://HOST:PORT of the LwM2M server (coaps:// with --psk-file)")
    parser.add_argument("--psk-file", type=Path, default=None, metavar="FILE",
                        help="speak DTLS-PSK: IDENTITY KEY_HEX ENDPOINT per line, one for "
                             "every device (the server's credentials file format)")
    parser.add_argument("--repo", type=Path, default=Path("."),
                        help="desired-state repository (devices and image catalog)")
    parser.add_argument("--count", type=int, default=None,
                        help="run N generated devices instead of the declared ones")
    parser.add_argument("--fault", action="append", default=[], metavar="KIND:SHARE",
                        help=f"give a share of devices a fault ({', '.join(Fault)})")
    parser.add_argument("--version", dest="start_version", default=None,
                        help="firmware version every device starts on")
    parser.add_argument("--lifetime", type=int, default=300, help="registration lifetime (s)")
    parser.add_argument("--queue-mode", action="store_true", help="register in queue mode")
    parser.add_argument("--lwm2m", default="1.1", choices=["1.0", "1.1", "1.2"])
    parser.add_argument("--push", action="store_true", help="devices take push delivery only")
    parser.add_argument("--block-size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0, help="seed for choosing faulty devices")
    parser.add_argument("--registrar", action="store_true",
                        help="registrations only, many endpoints per socket (for 100k loads)")
    parser.add_argument("--sockets", type=int, default=64, help="sockets for --registrar")
    parser.add_argument("--wait", type=float, default=30.0, metavar="SECONDS",
                        help="how long start-up waits for registrations before it reports "
                             "(exit 1 when no device registered by then)")


def build_specs(args: argparse.Namespace) -> tuple[list[DeviceSpec], Mapping[str, str]]:
    """The devices to run and the image catalog (which follows the repo while the fleet
    runs), from the arguments and the repo."""
    images = manifests.read_images(args.repo)
    live = manifests.RepoCatalog(args.repo, images)
    oldest = manifests.oldest_versions(images)
    if args.count is not None:
        pairs = [(f"sim-{i:05d}", "") for i in range(args.count)]
    else:
        pairs = [(d.endpoint, d.collection) for d in manifests.read_devices(args.repo)]
    shares = [parse_fault_share(text) for text in args.fault]
    faults = assign_faults([ep for ep, _ in pairs], shares, args.seed)
    delivery = DeliveryMethod.PUSH_ONLY if args.push else DeliveryMethod.PULL_ONLY
    keys = _keys(args, [ep for ep, _ in pairs])
    specs = [DeviceSpec(endpoint=ep, lifetime=args.lifetime, queue_mode=args.queue_mode,
                        version=args.start_version or oldest.get(coll) or "0.0.0",
                        lwm2m_version=args.lwm2m, delivery=delivery,
                        block_size=args.block_size, faults=faults[ep], psk=keys.get(ep))
             for ep, coll in pairs]
    return specs, live


def _keys(args: argparse.Namespace, endpoints: list[str]) -> dict[str, Psk]:
    """endpoint -> PSK from `--psk-file`; with one, every device needs its line and the
    server is reached over coaps://."""
    if args.psk_file is None:
        return {}
    keys = read_psk_file(args.psk_file)
    missing = [ep for ep in endpoints if ep not in keys]
    if missing:
        raise ValueError(f"{args.psk_file}: no PSK for {len(missing)} device(s), "
                         f"first {missing[0]!r}")
    if not args.server.startswith("coaps://"):
        raise ValueError("--psk-file needs a coaps://HOST:PORT --server")
    return keys


def run(args: argparse.Namespace) -> int:
    try:
        parse_server_uri(args.server)
        specs, catalog = build_specs(args)
    except (ValueError, OSError) as exc:
        print(f"fota simulate: {exc}", file=sys.stderr)
        return 2
    if not specs:
        print("fota simulate: no devices (none declared; use --count N)", file=sys.stderr)
        return 2
    if args.registrar:
        return asyncio.run(_registrar(args, [s.endpoint for s in specs]))
    return asyncio.run(_simulate(args.server, specs, catalog, args.wait))


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _registrar(args: argparse.Namespace, endpoints: list[str]) -> int:
    registrar = Registrar(resolve_server(args.server), endpoints, sockets=args.sockets,
                          lifetime=args.lifetime, lwm2m_version=args.lwm2m)
    stop = _stop_event()
    await registrar.open()
    try:
        await _until_stopped(_registrar_rounds(registrar, args.lifetime), stop)
        with contextlib.suppress(TimeoutError):
            _report("deregistered",
                    await asyncio.wait_for(registrar.deregister_all(), STOP_SECONDS))
    finally:
        registrar.close()
    return 0


async def _registrar_rounds(registrar: Registrar, lifetime: int) -> None:
    """Register everyone, then a round of Updates every 3/4 lifetime, until cancelled."""
    _report("registered", await registrar.register_all())
    while True:
        await asyncio.sleep(lifetime * 0.75)
        _report("updated", await registrar.update_all())


def _report(what: str, stats: RoundStats) -> None:
    print(json.dumps({what: stats.ok, "failed": stats.failed,
                      "seconds": round(stats.seconds, 3),
                      "per_second": round(stats.per_second, 1)}), flush=True)


async def _simulate(server: str, specs: list[DeviceSpec], catalog: Mapping[str, str],
                    wait: float) -> int:
    fleet = Fleet(server, specs, catalog, replace(Timing(), deregister_timeout=STOP_SECONDS))
    stop = _stop_event()
    if await _until_stopped(_start(fleet, wait), stop):
        registered = sum(d.registered for d in fleet.devices())
        if not registered:  # a success line would be a lie: nothing runs against it
            await _shut_down(fleet)
            print(f"fota simulate: none of {len(fleet)} devices registered with {server} "
                  f"within {wait:g}s (no answer, or refused: is the server up, and are the "
                  "endpoints declared in its repository?)", file=sys.stderr)
            return 1
        _started(fleet, server, registered, len(catalog))
        await stop.wait()
    await _shut_down(fleet)
    print(json.dumps({"stopped": len(fleet), "versions": _count(fleet.versions()),
                      "blocks": sum(d.blocks for d in fleet.devices()),
                      "pushed": sum(d.blocks_pushed for d in fleet.devices())}), flush=True)
    return 0


async def _start(fleet: Fleet, wait: float) -> None:
    """Start the fleet; then wait, at most `wait` seconds from the start, until each
    device registered or its first Register ended otherwise (refused, or timed out)."""
    deadline = asyncio.get_running_loop().time() + wait
    await fleet.start(timeout=wait)
    left = max(0.0, deadline - asyncio.get_running_loop().time())
    with contextlib.suppress(TimeoutError):
        await fleet.wait_all(lambda d: d.registered or d.register_attempts > 0, left)


def _started(fleet: Fleet, server: str, registered: int, images: int) -> None:
    print(json.dumps({"devices": len(fleet), "registered": registered, "server": server,
                      "images": images}), flush=True)
    if registered < len(fleet):
        print(f"fota simulate: {len(fleet) - registered} of {len(fleet)} devices are not "
              f"registered with {server} yet (no answer or refused); they keep trying",
              file=sys.stderr, flush=True)


async def _until_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run `work` unless a signal comes first (then cancel it); True when it finished."""
    task, stopped = asyncio.ensure_future(work), asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    for pending in (task, stopped):
        pending.cancel()
    await asyncio.gather(task, stopped, return_exceptions=True)
    return not stop.is_set()


async def _shut_down(fleet: Fleet) -> None:
    """De-register everyone, but a gone server must not keep a signalled process alive:
    after STOP_SECONDS the sockets are simply closed."""
    try:
        await asyncio.wait_for(fleet.stop(), STOP_SECONDS)
    except TimeoutError:
        await fleet.stop(deregister=False)


def _count(versions: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for version in versions.values():
        counts[version] = counts.get(version, 0) + 1
    return counts
