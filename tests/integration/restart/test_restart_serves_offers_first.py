"""A restarted `fota serve` answers the downloads it persisted before its HTTP API exists.

After a kill -9 the downloading devices send their next Block2 GET at their RFC 7252
retransmission (2-3 s later, then 4-6 s more): the CoAP port opens as soon as the
persisted offers are served again, and FastAPI (over a second of imports) comes after.
Here the child's import of `fastapi` is held at a gate (a `sitecustomize` on PYTHONPATH
blocked on a FIFO) until the block was answered: a server that imports FastAPI before
its CoAP port opens never answers, and the test fails on its timeout."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import struct
from dataclasses import replace
from pathlib import Path

import pytest
from aiocoap import CONTENT, Message
from controller_harness import COLLECTION, SIM_TIMING, DesiredRepo, specs
from serve_process import ENV, fota_serve, free_udp_port, serve_args

from reconciler.model.lwm2m import FirmwareState
from reconciler.simulator import DeviceSpec, Fault, Fleet

pytestmark = pytest.mark.slow

GATE = '''
import os, sys

class _Gate:
    """Holds the first import of fastapi until the test writes a byte to the FIFO."""
    def find_spec(self, name, path=None, target=None):
        if name == "fastapi":
            sys.meta_path.remove(self)
            with open(os.environ["FOTA_TEST_GATE"], "rb") as fifo:
                fifo.read(1)
        return None

sys.meta_path.insert(0, _Gate())
'''
BLOCK = 1  # the second 512-byte block: a resumed download, not a new one


def _block2_get(token: str, mid: int) -> bytes:
    """A CON GET of /fw/<token> asking for block BLOCK of 512 bytes (SZX 5)."""
    path = token.encode()
    options = (bytes([0xB2]) + b"fw" + bytes([0x0D, len(path) - 13]) + path
               + bytes([0xC1, BLOCK << 4 | 5]))
    return struct.pack("!BBHB", 0x41, 0x01, mid, 0x5A) + options


async def _first_answer(port: int, token: str, timeout: float) -> bytes:
    """Ask every 50 ms until the port answers, as a device's retransmissions would (no
    event tells another process's port opened)."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(("127.0.0.1", port))
        async with asyncio.timeout(timeout):
            mid = 0
            while True:
                mid += 1
                sock.send(_block2_get(token, mid))
                try:
                    async with asyncio.timeout(0.05):
                        return await loop.sock_recv(sock, 2048)
                except TimeoutError:
                    continue  # the process is still starting
                except ConnectionRefusedError:  # nothing listens yet (ICMP)
                    await asyncio.sleep(0.05)


def _offer_token(state: Path) -> str:
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as conn:
        [(token,)] = conn.execute("SELECT token FROM offers").fetchall()
    return str(token)


def _spec() -> DeviceSpec:
    return replace(specs(1)[0], lifetime=900, faults=frozenset({Fault.SLOW}))


async def test_a_restart_answers_a_persisted_download_before_it_imports_fastapi(
        tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1, image_size=16 * 512)
    state, port = tmp_path / "s.db", free_udp_port()
    fleet = Fleet(f"coap://127.0.0.1:{port}", [_spec()],
                  timing=replace(SIM_TIMING, update_every=600.0, slow_block_delay=0.2))
    env = {"FOTA_MIN_DOWNLOAD_TIME": "60"}
    try:
        async with fota_serve(repo.root, state, port, env) as first:
            await fleet.start(wait_registered=True, timeout=60)
            repo.set_target("2.0")
            await fleet.wait_all(lambda d: d.state is FirmwareState.DOWNLOADING, timeout=60)
            first.kill()
    finally:
        await fleet.stop(deregister=False)  # the server is gone: saves the 3 s De-register deadline
    token = _offer_token(state)
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(GATE)
    held = os.open(gate, os.O_RDWR)  # a writer exists: the child's open never blocks
    proc = await asyncio.create_subprocess_exec(
        *serve_args(repo.root, state, port), stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **ENV, **env, "FOTA_TEST_GATE": str(gate),
             "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"),
                                            os.environ.get("PYTHONPATH", "")])})
    assert proc.stderr is not None
    try:
        answer = Message.decode(await _first_answer(port, token, timeout=30))
        image = (repo.root / f"images/{COLLECTION}/fw-2.0.bin").read_bytes()
        assert (answer.code, answer.payload) == (CONTENT, image[BLOCK * 512:(BLOCK + 1) * 512])
        os.write(held, b"go")  # now FastAPI may load: the API follows, then the ready line
        async with asyncio.timeout(30):
            while b"fota serve ready" not in (line := await proc.stderr.readline()):
                assert line, "fota serve exited before it was ready"
    finally:
        os.close(held)
        if proc.returncode is None:
            proc.kill()
        await proc.communicate()
