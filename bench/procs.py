"""Child-process helpers the benchmarks share: free loopback ports for a child to bind, a
child's resident memory, the CPU time of the children waited for, and stopping a child
politely (SIGTERM, then SIGKILL after a bound).

Imported by rollout.py, loss.py, cluster.py, big_commit.py and others (the bench
directory is on sys.path when a benchmark runs as a script).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import resource
import socket
from collections.abc import Iterator
from pathlib import Path

_FLOOR = 10_000  # above the well-known and registered ports services commonly use


def _walk() -> Iterator[int]:
    """The ports below the kernel's ephemeral range, from a random point, round and round:
    one process never hands out the same port twice before it has walked them all."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32_768  # Linux's default
    ports = range(_FLOOR, max(low, _FLOOR + 1_000))
    first = random.randrange(len(ports))
    return itertools.cycle([*ports[first:], *ports[:first]])


_NEXT = _walk()


def _free(kind: socket.SocketKind) -> int:
    """A port for a child (fota serve, libcoap's server, PostgreSQL, the proxy) to bind a
    moment later, picked as tests/builders/ports.py picks them: port 0 never draws from
    below the ephemeral range, so no socket bound to port 0 meanwhile (a simulated
    device, a client, another benchmark's) can take it before the child binds, as a port
    0 handed out and released could be taken. A port that cannot be bound now is
    skipped."""
    for _ in range(1_000):  # bounded: a range with no bindable port is a broken machine
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


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid` in MiB, from /proc (Linux)."""
    found = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    assert found is not None
    return int(found.group(1)) / 1024


def children_cpu_s() -> float:
    """CPU seconds (user + system) of every child this process has waited for: a figure
    that a machine busy with other work inflates far less than wall time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def stop(proc: asyncio.subprocess.Process, timeout: float) -> bool:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds; True if it had
    to be killed."""
    if proc.returncode is not None:
        return False
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return True
    return False
