"""A throwaway PostgreSQL cluster for the tests, from Debian's `postgresql` binaries.

`PgCluster(bindir, port=...).start()` runs `initdb` into a fresh temporary directory and
`pg_ctl start` on the loopback port the caller picked (PostgreSQL cannot bind port 0 and
report: the tests take it from builders.ports, the benchmarks from procs, both below the
ephemeral range, so nothing bound to port 0 during initdb can take it), its unix socket
in that directory, with `fsync=off` for the tests
(a test never survives a power cut; bench/cluster.py keeps it on); `stop()` stops it
(`-m immediate`) and removes the directory.
`initdb` refuses to run as root, so as root both run as the unprivileged `postgres` user
the package creates (or `nobody`), via `runuser`, on a directory handed to that user.
`database()` gives each test a fresh schema of one database (a URL whose search_path
names it): creating and dropping a schema takes milliseconds, a database a checkpoint. The fixtures
(tests/conftest.py) skip with the reason when the binaries are missing, and fail
instead when FOTA_REQUIRE_POSTGRES=1 (`.ci/run`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

_SEARCH = ("/usr/lib/postgresql/*/bin",)
TESTS_DB = "fota_tests"


def binaries() -> Path | None:
    """The directory of initdb and pg_ctl: on PATH, else Debian's newest version."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                      else 0)
    return versions[-1].parent if versions else None


def _unprivileged() -> str | None:
    """Who runs the server when we are root (None: ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and no unprivileged user to run PostgreSQL as")


class PgCluster:
    def __init__(self, bindir: Path, *, port: int, fsync: bool = False) -> None:
        self.bindir = bindir
        self.fsync = fsync
        self.user = _unprivileged()
        self.dir = Path(tempfile.mkdtemp(prefix="fota-pg-"))
        self.port = port
        self._names = itertools.count(1)

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> PgCluster:
        if self.user is not None:
            shutil.chown(self.dir, self.user)
        self._run("initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "fota",
                  "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} "
                   "-c max_connections=200")
        if not self.fsync:
            options += " -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"),
                  "-w", "-t", "60", "-o", options, "start")
        self.admin(f"CREATE DATABASE {TESTS_DB}")
        return self

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://fota@/{dbname}?host={self.dir}&port={self.port}"

    def tcp_url(self, dbname: str = "postgres") -> str:
        """The same database over loopback TCP (for a test that cuts the connection)."""
        return f"postgresql://fota@127.0.0.1:{self.port}/{dbname}"

    def admin(self, sql: str, dbname: str = "postgres") -> None:
        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            conn.execute(sql)  # our own statement

    def new_database(self, name: str) -> str:
        """The URL of a new, empty database (the benchmark's: one per run)."""
        self.admin(f"CREATE DATABASE {name}")
        return self.url(name)

    def database(self) -> str:
        """The URL of a new, empty schema of the tests' database (its search_path set
        in the URL): a fresh store for one test, far cheaper than a database per test."""
        name = f"t{next(self._names)}"
        self.admin(f"CREATE SCHEMA {name}", dbname=TESTS_DB)
        return f"{self.url(TESTS_DB)}&options=-csearch_path%3D{name}"

    def drop(self, url: str) -> None:
        options = psycopg.conninfo.conninfo_to_dict(url)["options"]
        name = str(options).rpartition("=")[2]
        self.admin(f"DROP SCHEMA IF EXISTS {name} CASCADE", dbname=TESTS_DB)

    def stop(self) -> None:
        try:
            if (self.dir / "data" / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w",
                          "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
