"""Child-process helpers the benchmarks share: free loopback ports for a child to bind, a
child's resident memory, the CPU time of the children waited for, and stopping a child
politely (SIGTERM, then SIGKILL after a bound).

Imported by rollout.py, loss.py, cluster.py, big_commit.py and others (the bench
directory is on sys.path when a benchmark runs as a script).
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import resource
from pathlib import Path

# One way of picking ports for both: the tests' (tests/builders/ports.py), loaded by its
# path, since neither directory is a package and the reconciler package is no place for
# a test helper. It needs only the standard library. Its ports come from below the
# kernel's ephemeral range, which port 0 never draws from, so no socket bound to port 0
# meanwhile (a simulated device, a client, another benchmark's) can take one before the
# child binds it, as a port 0 handed out and released could be taken; a port that cannot
# be bound now is skipped. (A benchmark has no pytest-xdist worker: it walks them all.)
_PORTS_PATH = Path(__file__).resolve().parent.parent / "tests" / "builders" / "ports.py"
_spec = importlib.util.spec_from_file_location("fota_test_ports", _PORTS_PATH)
assert _spec is not None and _spec.loader is not None, _PORTS_PATH
_ports = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ports)


def free_udp_port() -> int:
    """A UDP port for a child (fota serve, libcoap's server, the proxy) to bind."""
    return int(_ports.free_udp_port())


def free_tcp_port() -> int:
    """A TCP port for a child (fota serve's HTTP API, PostgreSQL) to bind."""
    return int(_ports.free_tcp_port())


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
