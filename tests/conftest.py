"""Fixtures every test directory may use: the throwaway PostgreSQL cluster.

`pg_cluster` (session): one cluster for the whole run, started on first use and
stopped at the end, failing tests or not (bench/pgcluster.py, which the benchmark
shares). `pg_url`: a fresh,
empty schema of it per test (the store migrates it), dropped afterwards. Both skip with the reason
when PostgreSQL's binaries are missing, and fail instead under FOTA_REQUIRE_POSTGRES=1.
The heap's keeping (builders.heap): every test lets go of the FastAPI apps it built,
and what collecting the tests left alive is frozen out of the garbage collector's passes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from builders.heap import forget_apps, freeze_collected
from builders.ports import free_tcp_port
from builders.tools import unavailable

from bench.pgcluster import PgCluster, binaries


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    bindir = binaries()
    if bindir is None:
        reason = ("PostgreSQL's initdb and pg_ctl not found (Debian: apt-get install "
                  "postgresql; `make test` installs it as root)")
        unavailable(reason, "FOTA_REQUIRE_POSTGRES")
    # initdb runs between the choice of the port and the server's bind: a port of our own
    # (builders.ports), not one port 0 handed out, which anyone may take meanwhile.
    cluster = PgCluster(bindir, port=free_tcp_port())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    url = pg_cluster.database()
    yield url
    pg_cluster.drop(url)


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collecting left alive stays out of every later full collector pass
    (builders.heap: those passes stall every event loop of the process)."""
    freeze_collected()


@pytest.fixture(autouse=True)
def _forget_apps() -> Iterator[None]:
    """The FastAPI apps a test built die with it (builders.heap: else FastAPI's
    caches keep them all, and one garbage-collector pass grows past a second)."""
    yield
    forget_apps()
