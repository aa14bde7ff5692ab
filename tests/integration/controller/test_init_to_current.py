"""A new team's first hour: `fota init`, `fota validate`, two images published by
`fota publish --commit`, devices and a target committed, then a real `fota serve` on the
repository drives simulated devices to the target."""

from __future__ import annotations

import hashlib
from pathlib import Path

import git
import pytest
from controller_harness import SIM_TIMING
from serve_process import fota_serve, free_udp_port

from reconciler.cli import main
from reconciler.simulator import DeviceSpec, Fleet, make_package

pytestmark = pytest.mark.slow


def _publish(repo: Path, version: str) -> str:
    package = make_package(version, bytes(2048))
    build = repo.parent / f"app-{version}.bin"
    build.write_bytes(package)
    assert main(["publish", str(build), "--collection", "fleet", "--version", version,
                 "--repo", str(repo), "--commit"]) == 0
    return hashlib.sha256(package).hexdigest()


def _target(repo: Path, version: str, endpoints: list[str]) -> None:
    """The pull request a team merges next: devices declared, management on."""
    coll = repo / "manifests/fleet/collection.yaml"
    text = coll.read_text().replace("management: disabled", "management: collection")
    coll.write_text(text.replace('# target: "1.0.0"', f'target: "{version}"'))
    devices = repo / "manifests/fleet/devices/devices.yaml"
    devices.write_text(devices.read_text().replace("devices: []", "devices:") + "".join(
        f'- {{"endpoint": "{ep}"}}\n' for ep in endpoints))
    repo_git = git.Repo(repo)
    repo_git.index.add([str(coll.relative_to(repo)), str(devices.relative_to(repo))])
    repo_git.index.commit(f"fleet: target {version}")
    repo_git.close()


async def test_init_validate_publish_then_serve_brings_devices_to_the_target(
        tmp_path: Path) -> None:
    repo = tmp_path / "desired"
    assert main(["init", str(repo)]) == 0
    assert main(["validate", str(repo)]) == 0
    catalog = {_publish(repo, v): v for v in ("1.0", "2.0")}
    endpoints = ["urn:dev:first", "urn:dev:second"]
    _target(repo, "2.0", endpoints)
    assert main(["validate", str(repo)]) == 0
    port = free_udp_port()
    async with fota_serve(repo, tmp_path / "state.db", port):
        specs = [DeviceSpec(ep, version="1.0", block_size=512, lifetime=60) for ep in endpoints]
        async with Fleet(f"coap://127.0.0.1:{port}", specs, catalog, SIM_TIMING) as fleet:
            await fleet.wait_all(lambda d: d.version == "2.0" and d.registered, timeout=30)
            assert [d.executes for d in fleet.devices()] == [1, 1]
