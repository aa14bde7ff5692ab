"""The CoAPs (DTLS-PSK) listener measured: handshakes, memory per session, blocks per second.

One `Lwm2mServer` with a CoAPs listener runs in a child process (keys for `--sessions`
identities, one firmware offer per downloading endpoint); this process is the fleet (the
simulator's sockets, with a PSK or without). Measured in one run:
- handshakes per second: `--sessions` devices each do a handshake and a Register
  (`--concurrency` at a time), with the server's CPU seconds per handshake;
- memory: the server's resident growth per device for `--sessions` plain registrations,
  then for as many registrations inside DTLS sessions, and the difference (the goal is at
  most 10 KB per session beyond a plain registration);
- blocks per second over DTLS and over plain CoAP from the same server, `--downloaders`
  simulated downloads in a loop for `--seconds` each (the goal is a ratio of at least 0.5);
- the same figures for libcoap's coap-server-openssl with a PSK as the peer (handshakes
  with a GET, its memory per session, blocks of an image PUT into a dynamic resource).
Prints one JSON object. Run: .venv/bin/python bench/dtls.py [--sessions 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import procs
from aiocoap import GET, Message

from reconciler.simulator import register_messages, transfer
from reconciler.simulator.coap import Endpoint, Reliability
from reconciler.simulator.firmware import PackageUri, parse_uri

KEY = b"bench-psk-0123456"[:16]
IMAGE_SIZE = 64 * 1024
BLOCK = 512
SERVER = "coap-server-openssl"
CLIENT = "coap-client-openssl"
RELIABILITY = Reliability(ack_timeout=2.0, max_retransmit=4)


def identity(i: int) -> bytes:
    return f"bench-{i:05d}".encode()


def endpoint(i: int, kind: str = "s") -> str:
    return f"{kind}-{i:05d}"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the server child ------------------------------------------------------------------


async def serve(sessions: int, downloaders: int) -> None:
    from reconciler.lwm2m.server import Lwm2mServer

    keys = {identity(i): (KEY, endpoint(i)) for i in range(max(sessions, downloaders))}
    server = Lwm2mServer("127.0.0.1", 0, coaps=("127.0.0.1", 0), psk=keys.get)
    await server.start()
    image = os.urandom(IMAGE_SIZE)
    # Secured devices' offers serve only inside their sessions, and plain CoAP never
    # serves a secured device's firmware: the plain downloads use the plain endpoints'.
    offers = [server.offer_firmware(endpoint(i), "bench-image", image)
              for i in range(downloaders)]
    plain_offers = [server.offer_firmware(endpoint(i, "p"), "bench-image", image)
                    for i in range(downloaders)]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(json.dumps({"coap": server.port, "coaps": server.coaps_port,
                      "offers": [o.rsplit("/", 1)[1] for o in offers],
                      "plain_offers": [o.rsplit("/", 1)[1] for o in plain_offers]}),
          flush=True)
    await stop.wait()
    print(json.dumps({"dtls": server.dtls_status()}), flush=True)
    await server.stop()


# --- the fleet side ---------------------------------------------------------------------


async def open_sessions(port: int, count: int, concurrency: int, psk: bool,
                        message: Any, kind: str = "s") -> tuple[list[Endpoint], float, int]:
    """`count` sockets each sending `message(i)` (with a PSK: inside a new session);
    (the open sockets, seconds, failures)."""
    gate = asyncio.Semaphore(concurrency)
    socks: list[Endpoint] = []
    failed = 0

    async def one(i: int) -> None:
        nonlocal failed
        async with gate:
            sock = Endpoint(reliability=RELIABILITY)
            await sock.open("127.0.0.1", 0, (identity(i), KEY) if psk else None)
            socks.append(sock)
            try:
                await sock.request(message(i, kind), ("127.0.0.1", port))
            except Exception:
                failed += 1

    start = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(count)))
    return socks, time.monotonic() - start, failed


def register(i: int, kind: str) -> Message:
    return register_messages.register_message(endpoint(i, kind), 86400, "1.1", False)


def ping_get(_i: int, _kind: str) -> Message:
    return Message(code=GET, uri_path=())


async def blocks_per_second(uri_of: Any, downloaders: int, seconds: float,
                            psk: bool) -> dict[str, float]:
    blocks = 0
    failed = 0

    def count() -> None:
        nonlocal blocks
        blocks += 1

    async def loop(i: int, deadline: float) -> None:
        nonlocal failed
        uri = parse_uri(uri_of(i), secure=psk)
        assert isinstance(uri, PackageUri), uri
        options = transfer.PullOptions(block_size=BLOCK, flash_size=1 << 24,
                                       reliability=RELIABILITY, on_block=count,
                                       psk=(identity(i), KEY) if psk else None)
        while time.monotonic() < deadline:
            outcome = await transfer.download(uri, options)
            if not isinstance(outcome, bytes | bytearray):
                failed += 1

    start = time.monotonic()
    await asyncio.gather(*(loop(i, start + seconds) for i in range(downloaders)))
    elapsed = time.monotonic() - start
    return {"blocks_per_second": round(blocks / elapsed, 1), "failed_downloads": failed}


def close_all(socks: list[Endpoint]) -> None:
    for sock in socks:
        sock.close()


async def settle() -> None:
    """Let close alerts and stray datagrams drain before memory is read."""
    await asyncio.sleep(1.0)


async def measure_ours(args: argparse.Namespace) -> dict[str, Any]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--sessions", str(args.sessions),
         "--downloaders", str(args.downloaders)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    ports = json.loads(child.stdout.readline())
    try:
        return await _ours(args, child.pid, ports)
    finally:
        child.send_signal(signal.SIGTERM)
        child.communicate(timeout=60)


async def _ours(args: argparse.Namespace, pid: int, ports: dict[str, Any]) -> dict[str, Any]:
    await settle()
    base = procs.rss_mb(pid)
    plain, _, plain_failed = await open_sessions(ports["coap"], args.sessions,
                                                 args.concurrency, False, register, "p")
    close_all(plain)  # the registrations stay (sockets are the fleet's cost, not the server's)
    await settle()
    after_plain = procs.rss_mb(pid)
    cpu = cpu_seconds(pid)
    secured, seconds, failed = await open_sessions(ports["coaps"], args.sessions,
                                                   args.concurrency, True, register)
    cpu = cpu_seconds(pid) - cpu
    await settle()
    after_secure = procs.rss_mb(pid)
    close_all(secured)
    per_plain = (after_plain - base) * 1024 / args.sessions
    per_secure = (after_secure - after_plain) * 1024 / args.sessions
    coaps = await blocks_per_second(
        lambda i: f"coaps://127.0.0.1:{ports['coaps']}/fw/{ports['offers'][i]}",
        args.downloaders, args.seconds, True)
    coap = await blocks_per_second(
        lambda i: f"coap://127.0.0.1:{ports['coap']}/fw/{ports['plain_offers'][i]}",
        args.downloaders, args.seconds, False)
    return {
        "handshakes_per_second": round(args.sessions / seconds, 1),
        "server_cpu_ms_per_handshake": round(cpu * 1000 / args.sessions, 2),
        "failed_registers": {"plain": plain_failed, "dtls": failed},
        "kib_per_plain_registration": round(per_plain, 2),
        "kib_per_dtls_registration": round(per_secure, 2),
        "kib_per_session_beyond_plain": round(per_secure - per_plain, 2),
        "blocks_per_second": {"dtls": coaps, "plain": coap},
        "dtls_to_plain": round(coaps["blocks_per_second"]
                               / max(coap["blocks_per_second"], 0.1), 2),
    }


async def measure_libcoap(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    if shutil.which(SERVER) is None or shutil.which(CLIENT) is None:
        return {"skipped": f"{SERVER} not installed (libcoap3-bin)"}
    port = procs.free_udp_port()
    coaps_port = port + 1  # libcoap listens for DTLS on the next port
    # one key for every identity: libcoap's server takes -k as the key of any identity
    child = subprocess.Popen([SERVER, "-A", "127.0.0.1", "-p", str(port), "-k", KEY.decode(),
                              "-d", "4", "-v", "0"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await asyncio.sleep(0.5)
        image = work / "image.bin"
        image.write_bytes(os.urandom(IMAGE_SIZE))
        uri = f"coaps://127.0.0.1:{coaps_port}/fw"
        subprocess.run([CLIENT, "-u", "bench-00000", "-k", KEY.decode(), "-m", "put", "-f",
                        str(image), "-b", "1024", "-B", "5", uri], capture_output=True,
                       check=False)
        await settle()
        base, cpu = procs.rss_mb(child.pid), cpu_seconds(child.pid)
        count = min(args.sessions, args.libcoap_sessions)
        socks, seconds, failed = await open_sessions(coaps_port, count, args.concurrency,
                                                     True, ping_get)
        cpu = cpu_seconds(child.pid) - cpu
        await settle()
        grown = procs.rss_mb(child.pid) - base
        close_all(socks)
        blocks = await blocks_per_second(lambda i: uri, args.downloaders, args.seconds, True)
        return {
            "sessions": count,
            "handshakes_per_second": round(count / seconds, 1),
            "server_cpu_ms_per_handshake": round(cpu * 1000 / count, 2),
            "failed_requests": failed,
            "kib_per_session": round(grown * 1024 / count, 2),
            "blocks_per_second": blocks,
        }
    finally:
        child.terminate()
        child.wait(timeout=10)


async def main(args: argparse.Namespace) -> None:
    import tempfile

    ours = await measure_ours(args)
    with tempfile.TemporaryDirectory() as work:
        libcoap = await measure_libcoap(args, Path(work))
    print(json.dumps({"sessions": args.sessions, "downloaders": args.downloaders,
                      "image_bytes": IMAGE_SIZE, "block_size": BLOCK, "ours": ours,
                      "libcoap_coap_server_openssl": libcoap}, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--libcoap-sessions", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--downloaders", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        asyncio.run(serve(arguments.sessions, arguments.downloaders))
    else:
        asyncio.run(main(arguments))
