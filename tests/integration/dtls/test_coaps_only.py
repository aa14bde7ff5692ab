"""`fota serve --coap off` (issue 12 item 1, "instead of plain CoAP"): the CoAPs listener
alone. A secured fleet registers, is read, observed, downloads (pull, on the fast path)
or is pushed to (Block1) and completes a rollout through `run_service`; nothing is bound
on the would-be plain port; /status says which listeners run; `--coap off` without
`--coaps` is one line and exit 2."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from builders.ports import free_udp_port
from controller_harness import (
    SIM_TIMING,
    DesiredRepo,
    all_in,
    endpoint,
    serving,
    settings_for,
    until,
)

from reconciler.cli import main
from reconciler.model.lwm2m import DeliveryMethod
from reconciler.model.status import UpdateState
from reconciler.simulator.fleet import Fleet
from reconciler.simulator.spec import DeviceSpec

COUNT = 3
PUSHED = 2  # this device's /5/0/9 says push only: the server writes /5/0/0 (Block1)


def _credentials(path: Path, count: int) -> dict[int, tuple[bytes, bytes]]:
    keys = {n: (f"id-{n}".encode(), f"key-of-dev-{n}".encode()) for n in range(count)}
    path.write_text("identity,key,endpoint\n" + "".join(
        f"{identity.decode()},{key.hex()},{endpoint(n)}\n"
        for n, (identity, key) in keys.items()))
    return keys


def _plain_con_get() -> bytes:
    """A Confirmable CoAP GET /rd (header, token, Uri-Path): what a plain device sends."""
    return bytes([0x41, 0x01, 0x12, 0x34, 0x77, 0xB2]) + b"rd"


async def test_a_secured_fleet_completes_a_rollout_with_no_plain_listener(
        tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=COUNT)
    keys = _credentials(tmp_path / "creds.csv", COUNT)
    plain = free_udp_port()  # where --coap would have listened
    settings = settings_for(repo, tmp_path / "state.db", coap="off", coap_port=plain,
                            coaps="127.0.0.1:0", credentials=tmp_path / "creds.csv")
    specs = [DeviceSpec(endpoint(n), version="1.0", block_size=512, lifetime=60,
                        psk=keys[n], delivery=DeliveryMethod.PUSH_ONLY if n == PUSHED
                        else DeliveryMethod.PULL_ONLY) for n in range(COUNT)]
    async with serving(settings) as running:
        assert running.coap_port is None and running.coaps_port
        fleet = Fleet(f"coaps://127.0.0.1:{running.coaps_port}", specs, None, SIM_TIMING)
        await fleet.start(wait_registered=True, timeout=30)
        try:
            ctl = running.controller
            head = repo.set_target("2.0")
            await until(ctl, lambda: ctl.desired.revision == head)
            await until(ctl, all_in(ctl, UpdateState.CURRENT), timeout=60)
            devices = {d.endpoint: d for d in fleet.devices()}
        finally:
            await fleet.stop()
        async with httpx.AsyncClient() as http:
            status = (await http.get(f"http://127.0.0.1:{running.http_port}/status")).json()
        # nothing bound on the plain port: a datagram there meets the kernel's ICMP
        # port unreachable, never a CoAP answer
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("127.0.0.1", plain))
            probe.settimeout(5)
            probe.send(_plain_con_get())
            with pytest.raises(ConnectionRefusedError):
                probe.recv(1500)
    assert {d.version for d in devices.values()} == {"2.0"}
    assert all(d.downloads >= 1 for d in devices.values())
    assert devices[endpoint(PUSHED)].blocks == 0  # pushed (Block1), never pulled
    assert all(devices[endpoint(n)].blocks > 0 for n in range(COUNT) if n != PUSHED)
    assert status["listeners"] == {"coap": None,
                                   "coaps": f"127.0.0.1:{running.coaps_port}"}


def test_coap_off_without_coaps_is_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    assert main(["serve", "--repo", str(repo.root), "--state", str(tmp_path / "s.db"),
                 "--coap", "off", "--http", "127.0.0.1:0"]) == 2
    err = capsys.readouterr().err
    assert err == ("fota serve: --coap off (FOTA_COAP=off) needs --coaps HOST:PORT "
                   "(FOTA_COAPS): devices would have no listener at all\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # nothing started
