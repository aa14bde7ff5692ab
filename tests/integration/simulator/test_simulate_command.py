"""`fota simulate`: devices and image catalog from a repo's manifests, run until SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from builders.ports import free_udp_port
from builders.tools import finished

from reconciler.lwm2m.server import Lwm2mServer
from reconciler.simulator import Fault, cmd


def make_repo(root: Path) -> Path:
    (root / "manifests" / "trackers" / "devices").mkdir(parents=True)
    (root / "manifests" / "trackers" / "collection.yaml").write_text("name: Trackers\n")
    images = [("1.0.0", b"one", 1000), ("0.9.0", b"old", 10), ("2.0.0", b"two", 2000)]
    lines = ["images:"] + [
        f"  - {{version: '{v}', path: images/{v}.bin, sha256: "
        f"{hashlib.sha256(data).hexdigest()}, length: {len(data)}, created: {created}}}"
        for v, data, created in images]
    (root / "manifests" / "trackers" / "images.yaml").write_text("\n".join(lines) + "\n")
    devices = "devices:\n" + "".join(
        f'  - {{"endpoint": "trk-{i}", "target": null}}\n' for i in range(10))
    (root / "manifests" / "trackers" / "devices" / "a.yaml").write_text(devices)
    return root


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_declared_devices_start_on_their_collections_oldest_image(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    specs, catalog = cmd.build_specs(parse("--server", "coap://127.0.0.1:5683",
                                           "--repo", str(repo), "--fault", "integrity:0.2"))
    assert [s.endpoint for s in specs] == [f"trk-{i}" for i in range(10)]
    assert {s.version for s in specs} == {"0.9.0"}
    assert sum(Fault.INTEGRITY in s.faults for s in specs) == 2
    assert catalog == {hashlib.sha256(b"two").hexdigest(): "2.0.0",
                       hashlib.sha256(b"one").hexdigest(): "1.0.0",
                       hashlib.sha256(b"old").hexdigest(): "0.9.0"}


def test_generated_devices_take_the_given_version_and_options(tmp_path: Path) -> None:
    specs, _ = cmd.build_specs(parse("--server", "coap://h", "--repo", str(tmp_path),
                                     "--count", "3", "--version", "7.0", "--queue-mode",
                                     "--lifetime", "45", "--lwm2m", "1.0"))
    assert [(s.endpoint, s.version, s.queue_mode, s.lifetime, s.lwm2m_version)
            for s in specs] == [(f"sim-0000{i}", "7.0", True, 45, "1.0") for i in range(3)]


@pytest.mark.parametrize(("argv", "message"), [
    (("--server", "http://h", "--count", "1"), "coap://HOST"),
    (("--server", "coap://h", "--count", "1", "--fault", "meltdown"), "unknown fault"),
    (("--server", "coap://h",), "no devices"),
])
def test_bad_arguments_exit_2_with_a_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...],
        message: str) -> None:
    assert cmd.run(parse(*argv, "--repo", str(tmp_path))) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
async def test_fota_simulate_registers_the_fleet_and_de_registers_on_sigint(
        server: Any, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler.cli", "simulate", "--server", server.uri,
        "--repo", str(repo), stdout=asyncio.subprocess.PIPE)
    try:
        for i in range(10):
            await server.wait_event("register", f"trk-{i}", timeout=20)
        assert process.stdout is not None
        started = json.loads(await process.stdout.readline())
        assert started["devices"] == 10 and started["images"] == 3
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 20) == 0
        stopped = json.loads(await process.stdout.readline())
        assert stopped["versions"] == {"0.9.0": 10}
        assert all(server.count("deregister", f"trk-{i}") == 1 for i in range(10))
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.slow
async def test_fota_simulate_stops_promptly_on_sigterm_after_its_server_is_gone(
        tmp_path: Path) -> None:
    lwm2m = Lwm2mServer("127.0.0.1", 0)
    await lwm2m.start()
    gone = False
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler.cli", "simulate", "--server", lwm2m.public_uri,
        "--repo", str(tmp_path), "--count", "100", stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        started = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        assert started["devices"] == 100 and len(lwm2m.registrations()) == 100
        await lwm2m.stop()
        gone = True
        process.send_signal(signal.SIGTERM)
        # De-registering into the void is given cmd.STOP_SECONDS, not 10 s per device.
        assert await asyncio.wait_for(process.wait(), cmd.STOP_SECONDS + 5) == 0
        stopped = json.loads(await process.stdout.readline())
        assert stopped == {"stopped": 100, "versions": {"0.0.0": 100}, "blocks": 0,
                           "pushed": 0}
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        if not gone:
            await lwm2m.stop()


@pytest.mark.parametrize(("text", "message"), [
    ("devices: [unclosed\n", "cannot read"),
    ("devices: 5\n", "devices: expected a list"),
])
def test_an_unreadable_device_manifest_exits_2_naming_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str) -> None:
    bad = make_repo(tmp_path) / "manifests" / "trackers" / "devices" / "bad.yaml"
    bad.write_text(text)
    assert cmd.run(parse("--server", "coap://h", "--repo", str(tmp_path))) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and message in err, err


async def _simulate_exits(server: str, *argv: str) -> tuple[int, str, str]:
    code, out, err = await finished(sys.executable, "-m", "reconciler.cli", "simulate",
                                    "--server", server, *argv, timeout=30)
    return code, out.decode(), err.decode()


@pytest.mark.slow
async def test_fota_simulate_against_a_dead_server_exits_1_without_a_success_line(
        tmp_path: Path) -> None:
    port = free_udp_port()  # a port nobody serves (no port-0 server can take it either)
    code, out, err = await _simulate_exits(f"coap://127.0.0.1:{port}", "--repo",
                                           str(make_repo(tmp_path)), "--wait", "1")
    assert (code, out) == (1, "")
    assert f"none of 10 devices registered with coap://127.0.0.1:{port} within 1s" in err


@pytest.mark.slow
async def test_fota_simulate_count_refused_by_the_server_exits_1_without_a_success_line(
        tmp_path: Path) -> None:
    lwm2m = Lwm2mServer("127.0.0.1", 0, admit=lambda endpoint: False)  # declared: nobody
    await lwm2m.start()
    try:
        code, out, err = await _simulate_exits(lwm2m.public_uri, "--repo", str(tmp_path),
                                               "--count", "3", "--wait", "20")
    finally:
        await lwm2m.stop()
    assert (code, out) == (1, "")
    assert "none of 3 devices registered" in err
