"""Child-process helpers the benchmarks share: a free loopback UDP port, a child's resident
memory, the CPU time of the children waited for, and stopping a child politely (SIGTERM,
then SIGKILL after a bound).

Imported by rollout.py, loss.py and big_commit.py (the bench directory is on sys.path when
a benchmark runs as a script).
"""

from __future__ import annotations

import asyncio
import re
import resource
import socket
from pathlib import Path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
