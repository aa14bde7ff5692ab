"""Loopback ports for a server a test starts a moment later (a `fota serve` child, libcoap's
coap-server, PostgreSQL), so it cannot be told to bind port 0 and report back.

A port the kernel handed out for port 0 and that the test then released can be handed
out again to any socket bound to port 0 before the server binds it (a simulated device
of another pytest-xdist worker, a client): "already in use". These ports come from below
the kernel's ephemeral range, which port 0 never draws from, and each xdist worker walks
its own slice of it, so neither our own sockets nor the other worker take them. The
slice is entered at a random point, so a second test run on the same machine rarely
walks the same ports; a port that cannot be bound now is skipped.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
from collections.abc import Iterator
from pathlib import Path

_FLOOR = 10_000  # above the well-known and registered ports that services commonly use


def _ephemeral_low() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32_768  # Linux's default
    return max(low, _FLOOR + 1_000)


def _slice() -> range:
    """This worker's ports: gw0, gw1, ... of PYTEST_XDIST_WORKER_COUNT, or all of them."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    size = (_ephemeral_low() - _FLOOR) // max(workers, 1)
    start = _FLOOR + size * (worker % max(workers, 1))
    return range(start, start + size)


def _walk() -> Iterator[int]:
    ports = _slice()
    first = random.randrange(len(ports))
    return itertools.cycle([*ports[first:], *ports[:first]])


_NEXT = _walk()


def _free(kind: socket.SocketKind) -> int:
    for _ in range(1_000):  # bounded: a slice with no bindable port is a broken machine
        port = next(_NEXT)
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free loopback port below the ephemeral range")


def free_udp_port() -> int:
    return _free(socket.SOCK_DGRAM)


def free_tcp_port() -> int:
    return _free(socket.SOCK_STREAM)
