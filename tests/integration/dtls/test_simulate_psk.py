"""`fota simulate --psk-file`: a fleet in another process registers over CoAPs with the
keys of the file; the file's errors name file and line, never a key."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest

from reconciler.lwm2m.server import Lwm2mServer
from reconciler.simulator.psk_file import PskFileError, read_psk_file

from .conftest import KEYS


def psk_lines() -> str:
    return "".join(f"{identity.decode()} {key.hex()} {endpoint}  # a device\n"
                   for identity, (key, endpoint) in KEYS.items())


async def test_fota_simulate_registers_inside_dtls_sessions(
    server: Lwm2mServer, tmp_path: Path
) -> None:
    psk = tmp_path / "devices.psk"
    psk.write_text("# identity key endpoint\n\n" + psk_lines())
    (tmp_path / "manifests").mkdir()
    manifests = tmp_path / "manifests" / "c" / "devices"
    manifests.mkdir(parents=True)
    (tmp_path / "manifests" / "c" / "collection.yaml").write_text("name: C\n")
    (manifests / "d.yaml").write_text("devices:\n" + "".join(
        f'  - {{"endpoint": "{ep}"}}\n' for _key, ep in KEYS.values()))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler.cli", "simulate", "--server",
        f"coaps://127.0.0.1:{server.coaps_port}", "--repo", str(tmp_path),
        "--psk-file", str(psk), "--wait", "20", stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        started = json.loads(await asyncio.wait_for(process.stdout.readline(), 40))
        assert started == {**started, "devices": 2, "registered": 2}
        assert {r.endpoint for r in server.registrations()} == {"urn:dev:1", "urn:dev:2"}
        assert len(server.dtls_sessions()) == 2
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.parametrize(("line", "message"), [
    ("dev-1 00112233", "expected IDENTITY KEY_HEX ENDPOINT (3 fields), got 2"),
    ("dev-1 00112x33 urn:dev:1", "the key is not hex"),
])
def test_a_bad_line_is_named_by_file_and_line_without_the_key(
    tmp_path: Path, line: str, message: str
) -> None:
    psk = tmp_path / "devices.psk"
    psk.write_text(f"# comment\n{line}\n")
    with pytest.raises(PskFileError) as raised:
        read_psk_file(psk)
    assert str(raised.value) == f"{psk}:2: {message}"
    assert "0011" not in str(raised.value).replace(str(psk), "")
