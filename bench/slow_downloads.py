"""Slow-download benchmark (issue 8), printed as one JSON object.

10,000 devices download a 1 MiB image at one Block2 block per second each, as NB-IoT
links do, for `--duration` seconds. The server is `Lwm2mServer` in a process of its own,
the image offered to 10,000 endpoints through `offer_firmware`; the load is a separate
process of raw UDP sockets sending CON Block2 GETs with RFC 7252 retransmission (2-3 s
first timeout, doubling, 4 retransmissions), not 10,000 simulated devices. Reported:
the server's RSS sampled every 5 s (goal <= 300 MB and flat), its CPU share of one core
(goal <= 25 %) and CPU per datagram it received, requests against blocks received (a
retransmission storm shows as retransmissions and late answers), answer latency, the
load average; then the same load against libcoap's `coap-server-notls` serving the same
file (PUT to its /example_data), and the ratios (CPU per datagram: the one a starved
load generator distorts least, since a slower load lowers both servers' CPU share).
Our server runs on the allocator `fota serve` chooses (glibc's malloc unless
`PYTHONMALLOC` is set, reconciler/allocator.py; `server_pythonmalloc` says which).

    .venv/bin/python bench/slow_downloads.py [--devices 10000] [--duration 90]
        [--ten-minutes] [--block-size 1024] [--no-peer]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import procs

IMAGE_SIZE = 1024 * 1024
SOCKETS = 32  # the load generator's UDP sockets; devices share them, told by token
ACK_TIMEOUT, ACK_RANDOM_FACTOR, MAX_RETRANSMIT = 2.0, 1.5, 4  # RFC 7252 defaults
SAMPLE_EVERY = 5.0
GOALS = {"rss_mb": 300, "cpu_share_of_one_core": 0.25}


# --- the server under test, in its own process -----------------------------------
async def serve_offers(devices: int, size: int, paths_file: Path) -> None:
    """Lwm2mServer on a free port with the image offered to `devices` endpoints; writes
    the port and each download path to `paths_file`, then serves until SIGTERM. Blocks
    are counted into `Metrics` as `fota serve` counts them (serve/instrument.py)."""
    from reconciler.lwm2m.server import Lwm2mServer
    from reconciler.observe.metrics import Metrics

    server = Lwm2mServer("127.0.0.1", 0)
    await server.start()
    firmware = server.firmware
    Metrics().count_firmware(lambda: (firmware.blocks_sent, firmware.bytes_sent))
    data = random.Random(7).randbytes(size)
    paths = [urlparse(server.offer_firmware(f"nb-{n:05d}", "image-1", data)).path
             for n in range(devices)]
    del data
    paths_file.write_text(json.dumps({"port": server.port, "paths": paths}))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop()


# --- the load generator, in its own process ----------------------------------------
def _option(delta: int, value: bytes) -> bytes:
    """One CoAP option (deltas and lengths < 269 are all this benchmark needs)."""
    def nibble(n: int) -> tuple[int, bytes]:
        return (n, b"") if n < 13 else (13, bytes([n - 13]))
    d, dx = nibble(delta)
    length, lx = nibble(len(value))
    return bytes([d << 4 | length]) + dx + lx + value


def block2_get(mid: int, token: bytes, segments: list[bytes], num: int, szx: int) -> bytes:
    header = bytes([0x40 | len(token), 0x01]) + struct.pack(">H", mid) + token
    options, last = b"", 0
    for segment in segments:  # Uri-Path (11)
        options += _option(11 - last, segment)
        last = 11
    value = num << 4 | szx
    encoded = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return header + options + _option(23 - last, encoded)  # Block2 (23)


def block2_more(message: bytes) -> bool | None:
    """The M bit of a response's Block2 option, or None without one."""
    tkl, at, number = message[0] & 0x0F, 4 + (message[0] & 0x0F), 0
    del tkl
    while at < len(message) and message[at] != 0xFF:
        delta, length = message[at] >> 4, message[at] & 0x0F
        at += 1
        if delta == 13:
            delta, at = message[at] + 13, at + 1
        elif delta == 14:
            delta, at = struct.unpack_from(">H", message, at)[0] + 269, at + 2
        if length == 13:
            length, at = message[at] + 13, at + 1
        elif length == 14:
            length, at = struct.unpack_from(">H", message, at)[0] + 269, at + 2
        number += delta
        if number == 23:
            value = int.from_bytes(message[at:at + length], "big")
            return bool(value & 0x08)
        at += length
    return None


class Load:
    """Every device: one block GET per `period` seconds, retransmitted per RFC 7252."""

    def __init__(self, port: int, paths: list[str], period: float, szx: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.period, self.szx = period, szx
        self.segments = [[s.encode() for s in p.strip("/").split("/")] for p in paths]
        n = len(paths)
        self.block = [0] * n
        self.seq = [0] * n  # request number: the token's second half
        self.first_sent = [0.0] * n
        self.message: list[bytes | None] = [None] * n  # outstanding request
        self.tries = [0] * n
        self.done = [False] * n
        self.heap: list[tuple[float, int, int]] = []  # (due, device, seq at scheduling)
        self.stats = {"requests": 0, "retransmissions": 0, "answers": 0, "blocks": 0,
                      "late_answers": 0, "resets": 0, "gave_up": 0, "completed": 0}
        self.codes: dict[str, int] = {}
        self.latencies: list[float] = []
        self.sockets = []
        for _ in range(SOCKETS):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.connect(("127.0.0.1", port))
            sock.setblocking(False)
            self.loop.add_reader(sock.fileno(), self._receive, sock)
            self.sockets.append(sock)
        start = time.monotonic()
        for device in range(n):  # spread over the first period
            heapq.heappush(self.heap, (start + period * device / n, device, -1))

    def _send(self, device: int, now: float) -> None:
        self.seq[device] = (self.seq[device] + 1) & 0xFFFF
        token = struct.pack(">IH", device, self.seq[device])
        mid = random.randrange(0x10000)
        self.message[device] = block2_get(mid, token, self.segments[device],
                                          self.block[device], self.szx)
        self.first_sent[device], self.tries[device] = now, 0
        self.stats["requests"] += 1
        self._transmit(device, now, ACK_TIMEOUT * random.uniform(1, ACK_RANDOM_FACTOR))

    def _transmit(self, device: int, now: float, timeout: float) -> None:
        message = self.message[device]
        assert message is not None
        # A full socket buffer loses the datagram, as a radio would: retransmission covers it.
        with contextlib.suppress(BlockingIOError):
            self.sockets[device % SOCKETS].send(message)
        heapq.heappush(self.heap, (now + timeout, device, self.seq[device]))

    def tick(self, now: float) -> float:
        """Send what is due; returns when the next thing is due."""
        while self.heap and self.heap[0][0] <= now:
            due, device, seq = heapq.heappop(self.heap)
            if seq == -1:
                if not self.done[device]:
                    self._send(device, now)
            elif seq == self.seq[device] and self.message[device] is not None:
                self._retransmit(device, now, due)
        return self.heap[0][0] if self.heap else now + 1.0

    def _retransmit(self, device: int, now: float, due: float) -> None:
        self.tries[device] += 1
        if self.tries[device] > MAX_RETRANSMIT:
            self.stats["gave_up"] += 1
            self.message[device] = None
            heapq.heappush(self.heap, (now + self.period, device, -1))
            return
        self.stats["retransmissions"] += 1
        elapsed = due - self.first_sent[device]
        self._transmit(device, now, elapsed)  # doubling: the next wait equals the time so far

    def _receive(self, sock: socket.socket) -> None:
        now = time.monotonic()
        for _ in range(256):
            try:
                data = sock.recv(2048)
            except BlockingIOError:
                return
            self._answer(sock, data, now)

    def _answer(self, sock: socket.socket, data: bytes, now: float) -> None:
        if len(data) < 4:
            return
        kind, code = data[0] >> 4 & 3, data[1]
        if kind == 3:
            self.stats["resets"] += 1
            return
        if kind == 0:  # a separate CON response wants our empty ACK
            sock.send(bytes([0x60, 0]) + data[2:4])
        if code == 0 or (data[0] & 0x0F) != 6:
            return
        device, seq = struct.unpack_from(">IH", data, 4)
        if device >= len(self.block) or seq != self.seq[device] or self.message[device] is None:
            self.stats["late_answers"] += 1
            return
        self.message[device] = None
        self.stats["answers"] += 1
        self.latencies.append(now - self.first_sent[device])
        dotted = f"{code >> 5}.{code & 0x1F:02d}"
        self.codes[dotted] = self.codes.get(dotted, 0) + 1
        if dotted == "2.05":
            self.stats["blocks"] += 1
            self.block[device] += 1
            if not block2_more(data):
                self.done[device] = True
                self.stats["completed"] += 1
                return
        due = max(now, self.first_sent[device] + self.period)
        heapq.heappush(self.heap, (due, device, -1))

    def close(self) -> None:
        for sock in self.sockets:
            self.loop.remove_reader(sock.fileno())
            sock.close()


async def run_load(port: int, paths: list[str], period: float, szx: int,
                   duration: float) -> dict[str, Any]:
    load = Load(port, paths, period, szx)
    started = time.monotonic()
    cpu_before = time.process_time()
    try:
        while (now := time.monotonic()) < started + duration:
            wake = load.tick(now)
            await asyncio.sleep(min(max(wake - time.monotonic(), 0.0), 0.05))
    finally:
        load.close()
    elapsed = time.monotonic() - started
    latencies = sorted(load.latencies) or [float("nan")]
    stats = load.stats
    return {**stats, "codes": load.codes, "seconds": round(elapsed, 1),
            "blocks_per_s": round(stats["blocks"] / elapsed),
            "requests_per_block": round((stats["requests"] + stats["retransmissions"])
                                        / max(stats["blocks"], 1), 3),
            "latency_ms": {q: round(latencies[int(f * (len(latencies) - 1))] * 1000, 1)
                           for q, f in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))},
            "load_cpu_share": round((time.process_time() - cpu_before) / elapsed, 3)}


# --- the orchestration ----------------------------------------------------------------
def _proc_figures(pid: int) -> tuple[float, float]:
    """(RSS in MB, CPU seconds used) of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+)", status)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return (int(found.group(1)) / 1024 if found else float("nan")), cpu


async def measure(server: subprocess.Popen[bytes], port: int, paths: list[str],
                  args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Run the load process against `server`, sampling the server meanwhile."""
    out = tmp / "load.json"
    szx = (args.block_size.bit_length() - 5)
    (tmp / "load_paths.json").write_text(json.dumps(paths))
    rss0, cpu0 = _proc_figures(server.pid)
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    load = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--load", str(port), str(tmp / "load_paths.json"),
        str(args.period), str(szx), str(args.duration), str(out))
    samples: list[float] = []
    while load.returncode is None:
        try:
            await asyncio.wait_for(load.wait(), SAMPLE_EVERY)
        except TimeoutError:
            samples.append(round(_proc_figures(server.pid)[0], 1))
    rss1, cpu1 = _proc_figures(server.pid)
    elapsed = time.monotonic() - started
    if load.returncode != 0:
        raise RuntimeError(f"the load generator exited with {load.returncode}")
    second_half = samples[len(samples) // 2:] or [rss1]
    figures = json.loads(out.read_text())
    datagrams = figures["requests"] + figures["retransmissions"]
    return {"load_average": [round(a, 1) for a in (load_before, os.getloadavg()[0])],
            "server_rss_mb": {"idle_with_offers": round(rss0, 1), "max": max(samples or [rss1]),
                              "end": round(rss1, 1), "samples": samples,
                              "growth_over_second_half_mb": round(second_half[-1]
                                                                  - second_half[0], 1)},
            "server_cpu_share_of_one_core": round((cpu1 - cpu0) / elapsed, 3),
            # the figure a starved load generator distorts least: CPU per datagram received
            "server_cpu_us_per_request": round((cpu1 - cpu0) / max(datagrams, 1) * 1e6, 1),
            "load": figures}


async def ours(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    paths_file = tmp / "paths.json"
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(args.devices),
                               str(IMAGE_SIZE), str(paths_file)])
    try:
        while not paths_file.exists():
            if server.poll() is not None:
                raise RuntimeError("the Lwm2mServer process exited")
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.2)  # written whole (one write_text), but be sure
        offers = json.loads(paths_file.read_text())
        environ = Path(f"/proc/{server.pid}/environ").read_bytes().split(b"\0")
        chosen = [e.decode()[len("PYTHONMALLOC="):] for e in environ
                  if e.startswith(b"PYTHONMALLOC=")]
        return {"server_pythonmalloc": chosen[0] if chosen else None,
                **await measure(server, offers["port"], offers["paths"], args, tmp)}
    finally:
        server.terminate()
        server.wait(30)


async def peer(args: argparse.Namespace, tmp: Path) -> dict[str, Any] | None:
    """The same load against libcoap's coap-server-notls holding the same image."""
    binary, client = shutil.which("coap-server-notls"), shutil.which("coap-client-notls")
    if binary is None or client is None:
        return None
    image = tmp / "image.bin"
    image.write_bytes(random.Random(7).randbytes(IMAGE_SIZE))
    port = procs.free_udp_port()
    server = subprocess.Popen([binary, "-A", "127.0.0.1", "-p", str(port), "-v", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await asyncio.sleep(0.5)
        put = await asyncio.create_subprocess_exec(
            client, "-m", "put", "-b", "1024", "-f", str(image),
            f"coap://127.0.0.1:{port}/example_data", stdout=asyncio.subprocess.DEVNULL)
        if await put.wait() != 0:
            raise RuntimeError("coap-client-notls could not PUT the image")
        return await measure(server, port, ["/example_data"] * args.devices, args, tmp)
    finally:
        server.terminate()
        server.wait(30)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as a:
        result: dict[str, Any] = {
            "devices": args.devices, "image_bytes": IMAGE_SIZE, "block_size": args.block_size,
            "seconds_per_block": args.period, "duration_s": args.duration, "goals": GOALS,
            "lwm2m_server": await ours(args, Path(a))}
    if not args.no_peer:
        with tempfile.TemporaryDirectory() as b:
            theirs = await peer(args, Path(b))
        result["coap_server_notls"] = theirs
        if theirs is not None:
            mine = result["lwm2m_server"]
            result["ratio_ours_to_libcoap"] = {
                "rss_max": round(mine["server_rss_mb"]["max"]
                                 / max(theirs["server_rss_mb"]["max"], 0.1), 2),
                "cpu": round(mine["server_cpu_share_of_one_core"]
                             / max(theirs["server_cpu_share_of_one_core"], 0.001), 2),
                "cpu_per_request": round(mine["server_cpu_us_per_request"]
                                         / max(theirs["server_cpu_us_per_request"], 0.1), 2)}
    return result


def cli() -> None:
    if sys.argv[1:2] == ["--serve"]:
        # on the allocator `fota serve` runs on and set up as it does: glibc's malloc
        # unless PYTHONMALLOC is set (this executes the process again, same PID)
        from reconciler import allocator, heap
        allocator.exec_with_default()
        heap.configure_malloc()
        devices, size, paths_file = sys.argv[2:5]
        asyncio.run(serve_offers(int(devices), int(size), Path(paths_file)))
        return
    if sys.argv[1:2] == ["--load"]:
        port, paths, period, szx, duration, out = sys.argv[2:8]
        result = asyncio.run(run_load(int(port), json.loads(Path(paths).read_text()),
                                      float(period), int(szx), float(duration)))
        Path(out).write_text(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=90.0, help="seconds of load")
    parser.add_argument("--ten-minutes", action="store_true", help="--duration 600")
    parser.add_argument("--period", type=float, default=1.0, help="seconds per block")
    parser.add_argument("--block-size", type=int, default=1024, choices=[2 ** n for n in
                                                                        range(4, 11)])
    parser.add_argument("--no-peer", action="store_true", help="skip coap-server-notls")
    args = parser.parse_args()
    if args.ten_minutes:
        args.duration = 600.0
    print(json.dumps(asyncio.run(main(args))))


if __name__ == "__main__":
    cli()
