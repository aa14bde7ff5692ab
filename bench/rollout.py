"""Rollout benchmark, printed as one JSON object.

(a) `fota serve` and `fota simulate` (1,000 devices, 64 KiB image, 512-byte blocks unless
`--block-size`) as two processes on loopback: wall time from the commit that changes the
collection's target to every device reported Current, and firmware blocks per second.
(b) `fota serve` holding 100,000 registrations (queue-mode endpoints from a `Registrar`
over 64 sockets): the server's RSS, and the time to plan and persist a target change
that affects all of them (the controller's own figure, and commit -> logged).

(c) The rollout gate with five waves and a maintenance window, in process: microseconds
per decision (the device's wave, the gate over the per-wave counts, diff with the
windows that apply, the engine's decide and the index update the controller runs for
every device it looks at) in a collection of 1,000 and of 100,000 devices, the first two
waves done: the third wave's devices wait for the window, the later ones for the third
wave. The goal is a cost that does not grow with the fleet (within 20 %).

Progress is read from the server's log lines, so measuring costs the server nothing.

    .venv/bin/python bench/rollout.py [--devices 1000] [--registrations 100000]
        [--block-size 512] [--only rollout|registrations|waves]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import git
import procs
import yaml

from reconciler.controller.rollout import Placement, RolloutIndex
from reconciler.engine import decide, diff
from reconciler.engine.waves import wave_of
from reconciler.model.desired import (
    Collection,
    DesiredState,
    Device,
    FailureThreshold,
    FirmwareImage,
    MaintenanceWindow,
    Management,
    RolloutPolicy,
    Wave,
    WindowGate,
)
from reconciler.model.lwm2m import Registration
from reconciler.model.observed import DeviceProgress, DeviceReport
from reconciler.model.status import UpdateState
from reconciler.simulator.coap import Endpoint
from reconciler.simulator.register_messages import register_message
from reconciler.simulator.registration_load import Registrar

IMAGE_SIZE = 64 * 1024
BLOCK = 512
COLLECTION = "b0000c"
PATIENCE = 40.0  # seconds after the commit before the rollout is reported as it stands
CURRENT = "-> Current: running 2.0"  # the log line of a device done
SETTLE = {"FOTA_RESYNC_INTERVAL": "3600", "FOTA_POLL_SOURCE": "1"}


def write_images(root: Path, image_size: int, id_prefix: str) -> Path:
    """Images 1.0 and 2.0 of random bytes and the bench collection's images.yaml; returns
    the collection's manifest directory (with an empty devices/)."""
    images = []
    (root / "images").mkdir(exist_ok=True)
    for n, version in enumerate(("1.0", "2.0")):
        data = os.urandom(image_size)
        path = f"images/fw-{version}.bin"
        (root / path).write_bytes(data)
        images.append({"imageId": f"{id_prefix}{n + 1}", "version": version, "path": path,
                       "filename": f"fw-{version}.bin", "length": len(data),
                       "sha256": hashlib.sha256(data).hexdigest(), "created": 1_700_000_000_000})
    base = root / "manifests" / "bench"
    (base / "devices").mkdir(parents=True)
    (base / "images.yaml").write_text(yaml.safe_dump({"images": images}))
    return base


def make_repo(root: Path, endpoints: list[str], image_size: int = IMAGE_SIZE) -> git.Repo:
    """One collection targeting 1.0, images 1.0 and 2.0 (64 KiB unless `image_size`),
    the given devices."""
    repo = git.Repo.init(root, initial_branch="main")
    base = write_images(root, image_size, "b0000")
    lines = ["devices:"] + [f'- {{"endpoint": "{ep}"}}' for ep in endpoints]
    (base / "devices" / "all.yaml").write_text("\n".join(lines) + "\n")
    set_target(repo, "1.0")
    return repo


def set_target(repo: git.Repo, version: str) -> float:
    doc = {"collectionId": COLLECTION, "name": "bench",
           "firmware": {"management": "collection", "target": version},
           "rollout": {}}  # every device at once: what this benchmark measures
    (Path(repo.working_dir) / "manifests/bench/collection.yaml").write_text(yaml.safe_dump(doc))
    repo.git.add(A=True)
    at = time.time()
    repo.git.commit("-q", "-m", f"target {version}")
    return at


class Server:
    """`fota serve` as a child process whose log lines the benchmark watches."""

    def __init__(self, repo: Path, state: Path | str, port: int, env: dict[str, str]
                 ) -> None:
        self.args = [sys.executable, "-m", "reconciler.cli", "serve", "--repo", str(repo),
                     "--state", str(state), "--coap", f"127.0.0.1:{port}",
                     "--http", "127.0.0.1:0"]
        self.env = {**os.environ, **SETTLE, **env}
        self.lines: list[tuple[float, str]] = []
        self._event = asyncio.Event()

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.args, stderr=asyncio.subprocess.PIPE, env=self.env)
        self._reader = asyncio.create_task(self._read())
        await self.wait_for(lambda line: "fota serve ready" in line, 1, 120)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while raw := await self.proc.stderr.readline():
            self.lines.append((time.time(), raw.decode(errors="replace")))
            self._event.set()

    async def wait_for(self, match: Any, count: int, timeout: float,
                       since: float = 0.0) -> float:
        """Until `count` log lines logged after `since` satisfy `match`; returns when the
        last one arrived."""
        hits: list[float] = []
        try:
            async with asyncio.timeout(timeout):
                await self._until(match, count, since, hits)
        except TimeoutError:
            kept = Path(tempfile.gettempdir()) / "bench-rollout-serve.log"
            kept.write_text("".join(f"{at:.3f} {line}" for at, line in self.lines))
            raise RuntimeError(f"only {len(hits)} of {count} log lines in {timeout}s; "
                               f"the server's log is in {kept}") from None
        return hits[count - 1]

    async def _until(self, match: Any, count: int, since: float, hits: list[float]) -> None:
        # Each line is looked at once: rescanning the whole log on every new line cost
        # seconds of CPU the server and the simulator were short of on a 2-core machine.
        seen = 0
        while True:
            fresh, seen = self.lines[seen:], len(self.lines)
            hits += [at for at, line in fresh if at >= since and match(line)]
            if len(hits) >= count:
                return
            if self.proc.returncode is not None:
                raise RuntimeError("fota serve exited:\n" + "".join(
                    line for _, line in self.lines[-20:]))
            self._event.clear()
            await self._event.wait()

    def rss_mb(self) -> float:
        return procs.rss_mb(self.proc.pid)

    async def stop(self) -> None:
        if await procs.stop(self.proc, 60):
            tail = "".join(line for _, line in self.lines[-30:])
            print(f"fota serve did not stop on SIGTERM; killed. Log tail:\n{tail}",
                  file=sys.stderr)
        await self._reader

    def stopped_in(self) -> float | None:
        """Seconds from "shutting down" to "stopped" in the log, if both appeared."""
        marks = {m: at for at, line in self.lines for m in ("shutting down", "stopped")
                 if f"reconciler.serve: {m}" in line}
        if len(marks) < 2:
            return None
        return round(marks["stopped"] - marks["shutting down"], 2)


async def roll_out(server: Server, repo: git.Repo, devices: int, ready_s: float,
                   patience: float, label: str) -> float:
    """Wait until all `devices` run 1.0, commit target 2.0 and wait up to `patience` s for
    them to run it (a rollout that does not finish is reported as it stands); returns the
    commit's time."""
    await server.wait_for(lambda line: "-> Current: running 1.0" in line, devices, ready_s)
    committed = set_target(repo, "2.0")
    try:
        await server.wait_for(lambda line: CURRENT in line, devices, patience, since=committed)
    except RuntimeError as exc:
        print(f"{label}: {exc}", file=sys.stderr)
    return committed


async def rollout(devices: int, tmp: Path, block: int = BLOCK, *,
                  state: Path | str | None = None, env: dict[str, str] | None = None,
                  patience: float = PATIENCE) -> dict[str, Any]:
    """(a); on `state` (a file or a postgresql:// URL) when given (bench/cluster.py)."""
    endpoints = [f"sim-{i:05d}" for i in range(devices)]
    repo = make_repo(tmp / "repo", endpoints)
    port = procs.free_udp_port()
    server = Server(tmp / "repo", state or tmp / "state.db", port, env or {})
    await server.start()
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler.cli", "simulate", "--server",
        f"coap://127.0.0.1:{port}", "--repo", str(tmp / "repo"), "--count", str(devices),
        "--version", "1.0", "--block-size", str(block), stdout=asyncio.subprocess.DEVNULL)
    try:
        committed = await roll_out(server, repo, devices, 120, patience, "rollout")
    finally:
        await procs.stop(sim, 30)
        await server.stop()
    times = sorted(at - committed for at, line in server.lines
                   if at >= committed and CURRENT in line)
    per_device = math.ceil(IMAGE_SIZE / block)
    served = len(times) * per_device
    last = times[-1] if times else float("nan")
    return {"devices": devices, "image_bytes": IMAGE_SIZE, "block_size": block,
            "current": len(times), "never_current": devices - len(times),
            "commit_to_99pct_current_s": round(times[int(0.99 * devices) - 1], 2)
            if len(times) >= int(0.99 * devices) else None,
            "commit_to_all_current_s": round(last, 2) if len(times) == devices else None,
            "blocks": served, "blocks_per_s": round(served / last) if times else None,
            "goal_s": 15}


class QueueRegistrar(Registrar):
    """Registers in queue mode: 100,000 NB-IoT-like endpoints that sleep between reports."""

    async def _register(self, sock: Endpoint, endpoint: str) -> bool:
        message = register_message(endpoint, self.lifetime, self.lwm2m_version, True)
        response = await sock.request(message, self.server)
        if not response.code.is_successful():
            return False
        self.locations[endpoint] = tuple(response.opt.location_path)
        return True


async def registrations(count: int, tmp: Path) -> dict[str, Any]:
    endpoints = [f"reg-{i:06d}" for i in range(count)]
    repo = make_repo(tmp / "repo", endpoints)
    port = procs.free_udp_port()
    # The endpoints answer no device management: only ever "asleep" to the controller.
    server = Server(tmp / "repo", tmp / "state.db", port, {"FOTA_AWAKE_WINDOW": "0.001"})
    started = time.time()
    await server.start()
    boot_s = time.time() - started
    registrar = QueueRegistrar(("127.0.0.1", port), endpoints, sockets=64, in_flight=256)
    await registrar.open()
    try:
        stats = await registrar.register_all()
        rss_registered = server.rss_mb()
        committed = set_target(repo, "2.0")
        logged = await server.wait_for(
            lambda line: f"{count} devices retargeted" in line, 1, 300, since=committed)
        line = next(text for at, text in server.lines
                    if at >= committed and f"{count} devices retargeted" in text)
        planned = float(re.search(r"in ([0-9.]+)s", line).group(1))  # type: ignore[union-attr]
        rss_after = server.rss_mb()
    finally:
        registrar.close()
        await server.stop()
    return {"shutdown_s": server.stopped_in(), "registrations": stats.ok,
            "register_failed": stats.failed,
            "registers_per_s": round(stats.per_second), "server_start_s": round(boot_s, 2),
            "server_rss_mb": round(rss_registered, 1),
            "server_rss_after_retarget_mb": round(rss_after, 1), "rss_goal_mb": 300,
            "plan_and_persist_s": planned,
            "commit_to_persisted_s": round(logged - committed, 2)}


NOON = 1_796_040_000.0  # 2026-11-30T12:00:00Z: the night window is closed
FIVE_WAVES = tuple(
    Wave(name, share=share, soak=1800.0, min_success=95.0,
         failure_threshold=FailureThreshold(percent=5.0))
    for name, share in (("canary", 1.0), ("early", 5.0), ("third", 10.0), ("fourth", 20.0),
                        ("fifth", 30.0)))


def _fleet(devices: int) -> tuple[DesiredState, Collection]:
    images = {i: FirmwareImage(i, COLLECTION, v, f"fw-{v}.bin", "0" * 64, 65536, 1, f"i/{v}")
              for i, v in (("img1", "1.0"), ("img2", "2.0"))}
    night = MaintenanceWindow("night", "0 2 * * *", 7200.0, "Europe/Oslo",
                              WindowGate.DOWNLOAD)
    collection = Collection(COLLECTION, "bench", Management.COLLECTION, "img2",
                            rollout=RolloutPolicy(max_concurrent=100, waves=FIVE_WAVES,
                                                  windows=(night,)))
    fleet = {f"d{n:06d}": Device(f"d{n:06d}", COLLECTION, f"ep{n}") for n in range(devices)}
    return DesiredState("rev", {COLLECTION: collection}, images, fleet), collection


class WaveFleet:
    """A collection of `devices` with five waves, its rollout index loaded with the
    canary and the early wave Current and the third under way."""

    def __init__(self, devices: int) -> None:
        self.desired, self.collection = _fleet(devices)
        ids = list(self.desired.devices)
        self.index = RolloutIndex(self._place)
        waves = {d: wave_of(FIVE_WAVES, d, "img2", {}) for d in ids}
        states = {0: UpdateState.CURRENT, 1: UpdateState.CURRENT}
        self.index.load((COLLECTION, DeviceProgress(
            d, "img2", states.get(waves[d], UpdateState.PENDING), updated_at=1.0)) for d in ids)
        self.pending = [d for d in ids if waves[d] >= 2]

    @staticmethod
    def _place(progress: DeviceProgress) -> Placement:
        return wave_of(FIVE_WAVES, progress.device_id, "img2", {}), True

    def run(self, decisions: int, now: float = NOON) -> float:
        """Seconds per decision of a device not yet started, as the controller decides:
        its wave, the gate, diff and decide, and the index update."""
        reg = Registration("r", "ep", "127.0.0.1", 5683, 300, "1.1", "U", False, ("/5/0",),
                           now - 10, now - 10)
        report = DeviceReport("ep", "1.0", reported_at=now - 5)
        index, collection, pending = self.index, self.collection, self.pending
        began = time.perf_counter()
        for n in range(decisions):
            device_id = pending[(n * 7919) % len(pending)]  # spread over the fleet
            before = index.get(device_id)
            wave = wave_of(FIVE_WAVES, device_id, "img2", {})
            gate = index.gate(collection, now, wave, "img2")
            result = decide(diff(self.desired, device_id, report, reg), before, now, gate)
            if result.progress is not None and result.progress != before:
                index.put(COLLECTION, result.progress)
        return (time.perf_counter() - began) / decisions


def waves_bench(rounds: int = 9, decisions: int = 5_000) -> dict[str, Any]:
    """Both fleets measured in alternation (the best round of each), so a busy machine
    slows both alike."""
    small, large = WaveFleet(1_000), WaveFleet(100_000)
    best = {"small": math.inf, "large": math.inf}
    for _ in range(rounds):
        best["small"] = min(best["small"], small.run(decisions))
        best["large"] = min(best["large"], large.run(decisions))
    position = large.index.position(large.collection, NOON)
    return {"waves": len(FIVE_WAVES) + 1, "decisions_per_round": decisions,
            "rounds": rounds, "current_wave": position.name if position else None,
            "us_per_decision_1000": round(best["small"] * 1e6, 2),
            "us_per_decision_100000": round(best["large"] * 1e6, 2),
            "large_over_small": round(best["large"] / best["small"], 3),
            "goal": "large_over_small <= 1.2"}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--registrations", type=int, default=100_000)
    parser.add_argument("--block-size", type=int, default=BLOCK,
                        help="the simulated devices' Block2 size (16..1024)")
    parser.add_argument("--only", choices=("rollout", "registrations", "waves"),
                        default=None)
    args = parser.parse_args()
    result: dict[str, Any] = {}
    if args.only in (None, "rollout"):
        with tempfile.TemporaryDirectory() as a:
            result["rollout"] = await rollout(args.devices, Path(a), args.block_size)
    if args.only in (None, "registrations"):
        with tempfile.TemporaryDirectory() as b:
            result["registrations"] = await registrations(args.registrations, Path(b))
    if args.only in (None, "waves"):
        result["waves"] = waves_bench()
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
