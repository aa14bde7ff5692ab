"""What `fota serve` imports before its CoAP port opens, for a SQLite state: not psycopg.

A restarted server answers the downloads it was serving once its socket opens, and the
devices' first retransmission comes 2-3 s after their lost request, so every import
before the socket counts (psycopg and psycopg_pool: 0.13-0.25 s measured). The check runs
in a fresh interpreter: this process has long imported everything.
"""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import reconciler.cli, reconciler.serve.service
from reconciler.serve.settings import ServeSettings
location = ServeSettings.load({"repo": ".", "state": sys.argv[1]}).store_location()
print(str(location))
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in ("psycopg", "psycopg_pool"))))
"""


def _imports_for(state: str) -> tuple[str, set[str]]:
    done = subprocess.run([sys.executable, "-c", PROBE, state], capture_output=True,
                          text=True, timeout=60, check=True)
    location, loaded = [*done.stdout.splitlines(), "", ""][:2]
    return location, set(loaded.split())


def test_a_sqlite_state_never_loads_psycopg(tmp_path):
    location, loaded = _imports_for(str(tmp_path / "state.db"))
    assert location == str(tmp_path / "state.db")
    assert loaded == set()


def test_a_postgresql_url_still_gets_its_tcp_timeouts():
    location, loaded = _imports_for("postgresql://fota@db.example/fota")
    assert "tcp_user_timeout=30000" in location and "keepalives=1" in location
    assert "psycopg" in loaded  # the URL is parsed by libpq's rules, psycopg's conninfo
