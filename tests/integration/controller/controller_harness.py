"""Real parts for the controller's end-to-end tests: a desired-state git repository in
tmp_path, `run_service` on loopback port 0, and a simulator fleet pointed at it.

Timings are shortened through `ServeSettings` so a whole rollout, its retries and its
timeouts take seconds; every test awaits events (device versions, progress changes)
rather than sleeping.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git
import yaml

from reconciler.controller.core import Controller
from reconciler.model.status import UpdateState
from reconciler.serve.service import Running, run_service
from reconciler.serve.settings import ServeSettings
from reconciler.simulator import DeviceSpec, Fleet, Timing, make_package

COLLECTION = "c0ll00"
VERSIONS = ("1.0", "2.0", "3.0")


def image_id(version: str) -> str:
    return "1m" + version.replace(".", "0").ljust(6, "0")


def device_id(n: int) -> str:
    return f"d{n:06d}"


def endpoint(n: int) -> str:
    return f"urn:dev:sim-{n:04d}"


FAST = {
    "coap_port": 0, "http_port": 0, "workers": 32, "resync_interval": 2.0,
    "error_backoff": 0.1, "error_backoff_max": 1.0, "poll_source": 0.3,
    "request_timeout": 2.0, "execute_timeout": 1.0, "max_retries": 2,
    "backoff_base": 0.2, "backoff_max": 1.0, "block_size": 512, "seconds_per_block": 0.05,
    "min_download_time": 3.0, "update_timeout": 3.0, "poll_interval": 0.5,
    "awake_window": 0.7,  # shorter than the simulator's queue window below
}
SIM_TIMING = Timing(update_every=1.0, queue_window=1.0, retry_delay=0.2,
                    install_delay=0.05, reboot_delay=0.05)


@dataclass
class DesiredRepo:
    """A git repository holding one collection of `count` devices."""

    root: Path
    count: int
    management: str = "collection"
    target: str | None = "1.0"
    device_targets: dict[int, str] = field(default_factory=dict)
    device_tags: dict[int, dict[str, str]] = field(default_factory=dict)
    rollout: dict[str, Any] = field(default_factory=dict)
    image_size: int = 2048
    drift_policy: str | None = None

    def __post_init__(self) -> None:
        self.repo = git.Repo.init(self.root, initial_branch="main")
        with self.repo.config_writer() as config:
            config.set_value("user", "name", "test").set_value("user", "email", "t@example.com")
        self.write_images()
        self.commit("initial desired state")

    def write_images(self) -> None:
        entries = []
        for version in VERSIONS:
            data = make_package(version, bytes(self.image_size))
            path = f"images/{COLLECTION}/fw-{version}.bin"
            (self.root / path).parent.mkdir(parents=True, exist_ok=True)
            (self.root / path).write_bytes(data)
            entries.append({"imageId": image_id(version), "version": version,
                            "filename": f"fw-{version}.bin", "path": path,
                            "sha256": hashlib.sha256(data).hexdigest(), "length": len(data),
                            "created": 1_700_000_000_000, "tags": {}})
        self._write(f"manifests/{COLLECTION}/images.yaml", yaml.safe_dump({"images": entries}))

    def _write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def write_manifests(self) -> None:
        firmware: dict[str, Any] = {"management": self.management}
        if self.target is not None:
            firmware["target"] = self.target
        if self.drift_policy is not None:
            firmware["driftPolicy"] = self.drift_policy
        doc = {"collectionId": COLLECTION, "name": "test fleet", "firmware": firmware,
               "rollout": self.rollout}
        self._write(f"manifests/{COLLECTION}/collection.yaml", yaml.safe_dump(doc))
        lines = ["devices:"]
        for n in range(self.count):
            entry: dict[str, Any] = {"deviceId": device_id(n), "endpoint": endpoint(n)}
            if n in self.device_targets:
                entry["target"] = self.device_targets[n]
            if n in self.device_tags:
                entry["tags"] = self.device_tags[n]
            lines.append("- " + json.dumps(entry))
        self._write(f"manifests/{COLLECTION}/devices/all.yaml", "\n".join(lines) + "\n")

    def commit(self, message: str) -> str:
        self.write_manifests()
        self.repo.git.add(A=True)
        return str(self.repo.index.commit(message).hexsha)

    def set_target(self, version: str | None) -> str:
        self.target = version
        return self.commit(f"target {version}")


def settings_for(repo: DesiredRepo, state: Path, **overrides: Any) -> ServeSettings:
    return ServeSettings.load({**FAST, "repo": str(repo.root), "state": state,
                                    **overrides}, environ={})


@asynccontextmanager
async def serving(settings: ServeSettings,
                  clock: Callable[[], float] = time.time) -> AsyncIterator[Running]:
    """`run_service` in this event loop until the block ends; always shut down."""
    stop = asyncio.Event()
    ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_service(settings, stop, ready.set_result, clock=clock))
    try:
        done, _ = await asyncio.wait({ready, task}, timeout=20,
                                     return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # surfaces the start-up error
        yield ready.result()
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


def specs(count: int, version: str = "1.0", **kwargs: Any) -> list[DeviceSpec]:
    return [DeviceSpec(endpoint(n), version=version, block_size=512, lifetime=60, **kwargs)
            for n in range(count)]


@asynccontextmanager
async def fleet_of(running: Running, devices: Sequence[DeviceSpec],
                   timing: Timing = SIM_TIMING) -> AsyncIterator[Fleet]:
    fleet = Fleet(f"coap://127.0.0.1:{running.coap_port}", devices, timing=timing)
    await fleet.start()
    try:
        yield fleet
    finally:
        await fleet.stop()


def states(controller: Controller) -> dict[str, UpdateState | None]:
    """Every desired device's update state as the controller holds it."""
    index = controller.decider.index
    return {d: (p.state if (p := index.get(d)) else None) for d in controller.desired.devices}


async def until(controller: Controller, predicate: Callable[[], bool],
                timeout: float = 30.0) -> None:
    await controller.decider.wait_for(predicate, timeout)


def all_in(controller: Controller, state: UpdateState) -> Callable[[], bool]:
    return lambda: all(s is state for s in states(controller).values())
