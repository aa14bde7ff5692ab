"""A lossy UDP proxy between CoAP devices and a server, for the loss benchmark.

Devices talk to the proxy's port as if it were the server. Each device address gets an
upstream socket of its own towards the server, so the server sees one source address
per device and its own requests (Read, Write, Execute) come back through the proxy to
that device. Every datagram, either way, is dropped with probability `loss` and
otherwise sent twice with probability `dup`. Counts go to `--stats FILE` (JSON) on
SIGTERM. `--trace FILE` writes one JSON line per datagram (time, way, the device's
port, what befell it: sent, dropped or duplicated, and the CoAP header: type, code,
message id, token, path, Block1/Block2, Observe, the endpoint of a Register and the
offer token of a package URI write) for
bench/loss.py's per-device timelines; without it nothing is decoded. The trace's time
is when the proxy received the datagram and decided its fate, not when it sent it.

`--delay MS` holds every datagram that is sent, either way, MS milliseconds before
sending it (one way: a round trip through the proxy takes twice that), and `--jitter MS`
adds a uniform 0..MS to each datagram's own delay (each copy of a duplicate draws its
own). Each datagram leaves at its own time (its arrival plus the delay), so a delay never
serializes them: a burst stays a burst. Without jitter they wait in arrival order in one
queue whose head has the only timer; with jitter each has a timer of its own
(loop.call_later). Jitter can reorder datagrams, as a radio link's own retransmissions (HARQ,
RLC) do. Jitter draws come from a generator of their own, so the loss and duplication
decisions for a seed are the same with or without it.

    python bench/udp_proxy.py LISTEN_PORT SERVER_PORT [--loss 0.05] [--dup 0.05]
        [--seed 1] [--delay 0] [--jitter 0] [--stats FILE] [--trace FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import re
import signal
import time
from pathlib import Path
from typing import IO, Any, cast

from aiocoap import Message

Address = tuple[str, int]


class _Upstream(asyncio.DatagramProtocol):
    """One device's socket towards the server; answers go back to that device."""

    def __init__(self, proxy: Proxy, device: Address) -> None:
        self.proxy, self.device = proxy, device
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.proxy.forward(data, "down", lambda d: self.proxy.downstream_send(d, self.device),
                           self.device)


class Proxy(asyncio.DatagramProtocol):
    """The listening side: datagrams from devices, forwarded upstream."""

    def __init__(self, server: Address, loss: float, dup: float, seed: int,
                 trace: IO[str] | None = None, delay: float = 0.0,
                 jitter: float = 0.0) -> None:
        self.server, self.loss, self.dup, self.trace = server, loss, dup, trace
        self.delay, self.jitter = delay, jitter  # seconds, one way
        self.random = random.Random(seed)
        # Its own generator: drawing jitter must not shift the loss/dup decisions
        self.jitter_random = random.Random(f"jitter-{seed}")
        self.held: collections.deque[tuple[float, Any, bytes]] = collections.deque()
        self.timer: asyncio.TimerHandle | None = None
        self.upstreams: dict[Address, _Upstream] = {}
        self.pending: dict[Address, list[bytes]] = {}  # while its upstream socket opens
        self.counts = {f"{way}_{what}": 0 for way in ("up", "down")
                       for what in ("datagrams", "dropped", "duplicated")}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        upstream = self.upstreams.get(addr)
        if upstream is not None and upstream.transport is not None:
            self.forward(data, "up", upstream.transport.sendto, addr)
            return
        waiting = self.pending.setdefault(addr, [])
        waiting.append(data)
        if len(waiting) == 1:
            asyncio.get_running_loop().create_task(self._open(addr))

    async def _open(self, device: Address) -> None:
        loop = asyncio.get_running_loop()
        _, upstream = await loop.create_datagram_endpoint(
            lambda: _Upstream(self, device), remote_addr=self.server)
        self.upstreams[device] = upstream
        assert upstream.transport is not None
        for data in self.pending.pop(device, []):
            self.forward(data, "up", upstream.transport.sendto, device)

    def downstream_send(self, data: bytes, device: Address) -> None:
        if self.transport is not None:
            self.transport.sendto(data, device)

    def forward(self, data: bytes, way: str, send: Any, device: Address) -> None:
        self.counts[f"{way}_datagrams"] += 1
        if self.random.random() < self.loss:
            self.counts[f"{way}_dropped"] += 1
            self._traced(data, way, device, "dropped")
            return
        self._send(send, data)
        fate = "sent"
        if self.random.random() < self.dup:
            self.counts[f"{way}_duplicated"] += 1
            self._send(send, data)
            fate = "duplicated"
        self._traced(data, way, device, fate)

    def _send(self, send: Any, data: bytes) -> None:
        """Now, or at its own time: its arrival plus the link's delay (and its jitter);
        none waits for another."""
        if self.jitter:
            after = self.delay + self.jitter_random.uniform(0.0, self.jitter)
            asyncio.get_running_loop().call_later(after, send, data)
        elif self.delay > 0:
            # The same delay for all keeps arrival order: one FIFO and one timer for its
            # head, cheaper than a timer each at 10k datagrams/s; each still leaves at
            # its own arrival + delay
            loop = asyncio.get_running_loop()
            self.held.append((loop.time() + self.delay, send, data))
            if self.timer is None:
                self.timer = loop.call_at(self.held[0][0], self._release)
        else:
            send(data)

    def _release(self) -> None:
        """Sends every held datagram that is due; the timer for the next one."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self.held and self.held[0][0] <= now:
            _, send, data = self.held.popleft()
            send(data)
        self.timer = loop.call_at(self.held[0][0], self._release) if self.held else None

    def _traced(self, data: bytes, way: str, device: Address, fate: str) -> None:
        if self.trace is not None:
            self.trace.write(json.dumps({"t": round(time.time(), 4), "way": way,
                                         "port": device[1], "fate": fate, **_header(data)})
                             + "\n")


def _header(data: bytes) -> dict[str, Any]:
    """What a timeline needs of one CoAP datagram (empty when it does not parse)."""
    try:
        msg = Message.decode(data)
    except Exception:  # junk is traced as junk, never stops the proxy
        return {"junk": len(data)}
    out: dict[str, Any] = {"type": msg.mtype.name, "code": msg.code.dotted, "mid": msg.mid,
                           "token": msg.token.hex()}
    if msg.opt.uri_path:
        out["path"] = "/" + "/".join(msg.opt.uri_path)
    for name in ("block1", "block2"):
        block = getattr(msg.opt, name)
        if block is not None:
            out[name] = [block.block_number, int(block.more), block.size_exponent]
    if msg.opt.observe is not None:
        out["observe"] = msg.opt.observe
    endpoint = [q[3:] for q in msg.opt.uri_query if q.startswith("ep=")]
    if endpoint:
        out["ep"] = endpoint[0]
    # A package URI written to /5/0/1 names the offer whose Block2 GETs (from the
    # device's download socket, another port) the timeline then counts as the device's
    found = re.search(rb"/fw/([A-Za-z0-9_-]+)", msg.payload) if out.get("path") == "/5/0/1" \
        else None
    if found is not None:
        out["offer"] = found.group(1).decode()
    return out


async def serve(listen: int, server: int, loss: float, dup: float, seed: int,
                stats: Path | None, trace: IO[str] | None = None, delay: float = 0.0,
                jitter: float = 0.0) -> None:
    """Until SIGTERM; `delay` and `jitter` in seconds."""
    loop = asyncio.get_running_loop()
    transport, proxy = await loop.create_datagram_endpoint(
        lambda: Proxy(("127.0.0.1", server), loss, dup, seed, trace, delay, jitter),
        local_addr=("127.0.0.1", listen))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    transport.close()
    for upstream in proxy.upstreams.values():
        if upstream.transport is not None:
            upstream.transport.close()
    if stats is not None:
        stats.write_text(json.dumps({**proxy.counts, "devices": len(proxy.upstreams)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("listen", type=int)
    parser.add_argument("server", type=int)
    parser.add_argument("--loss", type=float, default=0.05)
    parser.add_argument("--dup", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--delay", type=float, default=0.0,
                        help="ms each datagram is held, each way (a round trip is twice)")
    parser.add_argument("--jitter", type=float, default=0.0,
                        help="ms, uniform 0..JITTER added per datagram (can reorder)")
    parser.add_argument("--stats", type=Path, default=None)
    parser.add_argument("--trace", type=Path, default=None,
                        help="one JSON line per datagram (see the module docstring)")
    args = parser.parse_args()
    if args.delay < 0 or args.jitter < 0:
        parser.error("--delay and --jitter are >= 0")
    delay, jitter = args.delay / 1000, args.jitter / 1000
    if args.trace is None:
        asyncio.run(serve(args.listen, args.server, args.loss, args.dup, args.seed, args.stats,
                          None, delay, jitter))
        return
    with args.trace.open("w", buffering=1 << 16) as trace:
        asyncio.run(serve(args.listen, args.server, args.loss, args.dup, args.seed,
                          args.stats, trace, delay, jitter))


if __name__ == "__main__":
    main()
