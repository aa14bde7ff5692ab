"""Migration 3 drops the progress columns nothing read (from_version, attempt_token,
last_action); a record written by the older schema survives it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState
from reconciler.store import open_store
from reconciler.store.schema import MIGRATIONS, migrate


def test_a_progress_row_of_the_first_schema_survives_the_column_drop(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS[:1])
    conn.execute("INSERT INTO progress VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                 ("d1", "img2", "Updating", "installing 2.0", 1, 3, "1.0", "1", "execute",
                  10.0, 910.0, None, 10.0, 10.0))
    conn.close()
    store = open_store(path)
    try:
        assert store.progress("d1") == DeviceProgress(
            "d1", "img2", UpdateState.UPDATING, "installing 2.0", attempts=1, retries_left=3,
            phase_started_at=10.0, deadline=910.0, executed_at=10.0, updated_at=10.0)
    finally:
        store.close()
    with sqlite3.connect(path) as check:
        columns = {r[1] for r in check.execute("PRAGMA table_info(progress)")}
    check.close()
    assert not columns & {"from_version", "attempt_token", "last_action"}
