"""`fota serve --credentials` and `--security-default`: a plain-CoAP Register of an
endpoint that requires PSK is refused (4.03, the reason as payload) while one that does
not registers; /status shows the credentials file; a real `fota serve` process takes a
rewritten file and SIGHUP without a restart and keeps the last good set over a bad file,
never logging a key."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from aiocoap import CON, POST, Message
from controller_harness import COLLECTION, DesiredRepo, device_id, endpoint, serving, settings_for
from serve_process import fota_serve, free_tcp_port, free_udp_port

from reconciler.serve.service import StartupError
from reconciler.store import open_reader

KEY = "5ec12e75ec12e75ec12e75ec12e75ec1"


def creds(*numbers: int) -> str:
    return "identity,key,endpoint\n" + "".join(f"id-{n},{KEY},{endpoint(n)}\n" for n in numbers)


def secure_device_one_only(repo: DesiredRepo) -> None:
    """Device 0 inherits the server's default, device 1 says `security: none`."""
    lines = ["devices:", json.dumps({"deviceId": device_id(0), "endpoint": endpoint(0)}),
             json.dumps({"deviceId": device_id(1), "endpoint": endpoint(1),
                         "security": "none"})]
    text = "\n- ".join(lines)
    (repo.root / f"manifests/{COLLECTION}/devices/all.yaml").write_text(text + "\n")
    repo.repo.git.add(A=True)
    repo.repo.index.commit("device 1 needs no PSK")


async def register(port: int, name: str, mid: int) -> Message:
    request = Message(_mtype=CON, _mid=mid, _token=b"t%d" % mid, code=POST, uri_path=("rd",),
                      uri_query=(f"ep={name}", "lt=300", "lwm2m=1.1"), content_format=40,
                      payload=b"</3/0>,</5/0>")
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.bind(("127.0.0.1", 0))
        await loop.sock_sendto(sock, bytes(request.encode()), ("127.0.0.1", port))
        data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 2048), 10)
    return Message.decode(data)


async def test_plain_coap_register_follows_the_policy_and_status_shows_the_file(
        tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=2)
    secure_device_one_only(repo)
    path = tmp_path / "creds.csv"
    path.write_text(creds(0))
    settings = settings_for(repo, tmp_path / "s.db", credentials=path, security_default="psk")
    async with serving(settings) as running:
        refused = await register(running.coap_port, endpoint(0), 1)
        allowed = await register(running.coap_port, endpoint(1), 2)
        async with httpx.AsyncClient() as client:
            status = (await client.get(f"http://127.0.0.1:{running.http_port}/status")).json()
    assert str(refused.code) == "4.03 Forbidden"
    assert refused.payload.decode() == \
        f"endpoint '{endpoint(0)}' requires PSK, came over plain CoAP"
    assert str(allowed.code) == "2.01 Created"
    section = status["credentials"]
    assert {k: section[k] for k in ("path", "count", "reloads", "lastReason")} == {
        "path": str(path), "count": 1, "reloads": 0, "lastReason": "start"}
    assert isinstance(section["loadedAt"], int) and "error" not in section
    assert KEY not in json.dumps(status)


async def until(reader_status: Callable[[], dict[str, object]],
                check: Callable[[dict[str, object]], bool]) -> dict[str, object]:
    """Poll the store the child process writes (no event crosses the process boundary)."""
    async with asyncio.timeout(20):
        while not check(status := reader_status()):
            await asyncio.sleep(0.05)
    return status


@pytest.mark.slow
async def test_a_running_fota_serve_reloads_on_rewrite_and_sighup_and_keeps_the_last_good(
        tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=4)
    watched, elsewhere = tmp_path / "etc", tmp_path / "elsewhere"
    watched.mkdir()
    elsewhere.mkdir()
    path = watched / "creds.csv"
    path.write_text(creds(0))
    state = tmp_path / "state" / "s.db"
    state.parent.mkdir()
    http = free_tcp_port()
    async with fota_serve(repo.root, state, free_udp_port(), http_port=http,
                          env={"FOTA_CREDENTIALS": str(path)}) as proc:
        reader = open_reader(state)
        try:
            now = reader.credentials_status
            await until(now, lambda s: s.get("count") == 1 and s.get("reason") == "start")
            path.write_text(creds(0, 1))  # a rewrite in place
            await until(now, lambda s: s.get("count") == 2)
            assert now()["reason"] == "file changed"
            path.write_text(creds(0, 1) + f"id-9,{KEY}0,urn:x\n")  # bad: odd-length key
            bad = await until(now, lambda s: s.get("error") is not None)
            assert bad["count"] == 2 and bad["error"] == \
                f"{path}:4: key: not hex: write an even number of digits 0-9, a-f"
            (elsewhere / "real.csv").write_text(creds(0, 1, 2))
            path.unlink()
            path.symlink_to(elsewhere / "real.csv")  # the link is new: a change it sees
            await until(now, lambda s: s.get("count") == 3 and s.get("error") is None)
            (elsewhere / "real.csv").write_text(creds(0, 1, 2, 3))  # not in its directory
            os.kill(proc.pid, signal.SIGHUP)
            done = await until(now, lambda s: s.get("count") == 4)
            assert done["reason"] == "SIGHUP" and done["reloads"] == 3
            async with httpx.AsyncClient() as client:
                body = (await client.get(f"http://127.0.0.1:{http}/status")).json()
            assert body["credentials"]["count"] == 4 and proc.returncode is None
        finally:
            reader.close()
    log = (state.parent / "serve.log").read_text()
    assert f"{path}:4: key: not hex" in log and KEY not in log


async def test_a_bad_credentials_file_is_a_refusal_to_start(tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1)
    path = tmp_path / "creds.csv"
    path.write_text(f"identity,key,endpoint\nid-0,{KEY}0,{endpoint(0)}\n")
    state = tmp_path / "state" / "s.db"
    with pytest.raises(StartupError) as refused:
        async with serving(settings_for(repo, state, credentials=path)):
            pass
    assert str(refused.value) == (
        "credentials not usable (--credentials or FOTA_CREDENTIALS): "
        f"{path}:2: key: not hex: write an even number of digits 0-9, a-f")
    assert not state.parent.exists()  # what the failed start created is gone
