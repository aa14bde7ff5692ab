"""Schema migrations by user_version, and state surviving close and reopen."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import StateFileInUse
from reconciler.model.lwm2m import Registration
from reconciler.model.observed import DeviceProgress, DeviceReport
from reconciler.model.status import UpdateState
from reconciler.store import SqliteStore, open_reader, open_store
from reconciler.store.schema import MIGRATIONS, SCHEMA_VERSION, SchemaError, migrate
from reconciler.store.writer import connect


def _version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def test_a_new_file_is_created_in_wal_mode_at_the_current_schema_version(db_path: Path) -> None:
    open_store(db_path).close()
    assert _version(db_path) == SCHEMA_VERSION
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_later_migration_step_is_applied_once_on_top_of_an_existing_file(
        tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    assert migrate(conn) == SCHEMA_VERSION
    extended = (*MIGRATIONS, "CREATE TABLE extra (k TEXT PRIMARY KEY)")
    assert migrate(conn, extended) == SCHEMA_VERSION + 1
    assert migrate(conn, extended) == SCHEMA_VERSION + 1  # idempotent
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "extra" in tables
    conn.close()


def test_a_failing_migration_step_leaves_the_previous_version_intact(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    migrate(conn)
    broken = (*MIGRATIONS, "CREATE TABLE half (k TEXT); CREATE TABLE half (k TEXT)")
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, broken)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "half" not in tables
    conn.close()


def test_a_file_from_a_newer_release_is_refused(db_path: Path) -> None:
    open_store(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaError):
        open_store(db_path)
    with pytest.raises(SchemaError):
        open_reader(db_path)


def test_the_reader_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_reader(tmp_path / "nothing.db")


def test_everything_written_is_there_after_close_and_reopen(state: Path | str, fleet: Any) -> None:
    store = open_store(state)
    store.apply_desired(fleet.snapshot(revision="abc123"))
    reg = Registration("rid1", "ep-0", "127.0.0.1", 5690, 300, "1.1", "UQ", True,
                       ("/3/0", "/5/0"), 10.0, 12.0)
    store.put_registration(reg)
    store.put_report("dev0000", DeviceReport("ep-0", firmware_version="1.0", reported_at=3.5))
    progress = DeviceProgress("dev0000", fleet.v2, UpdateState.DOWNLOADING, "block 3/9",
                              attempts=1, deadline=99.5, executed_at=None, updated_at=4.0)
    store.put_progress(progress)
    store.set_source_status({"branch": "main", "errors": ("a.yaml:3: x: bad",)})
    store.close()

    again = open_store(state)
    assert again.applied_revision() == "abc123"
    assert again.registrations() == [reg]
    assert again.report("dev0000") == DeviceReport("ep-0", firmware_version="1.0",
                                                   reported_at=3.5)
    assert again.progress("dev0000") == progress
    assert again.all_progress() == [progress]
    again.close()
    reader = open_reader(state)
    assert reader.source_status() == {"branch": "main", "errors": ["a.yaml:3: x: bad"]}
    assert reader.collection(fleet.cid) is not None
    reader.close()


def test_a_deleted_registration_is_gone(store: SqliteStore) -> None:
    writer = store
    reg = Registration("r", "ep-9", "::1", 1, 60, "1.0", "U", False, (), 1.0, 1.0)
    writer.put_registration(reg)
    writer.delete_registration("ep-9")
    assert writer.registrations() == []


def test_a_durable_progress_write_commits_under_full_sync_and_then_relaxes(
        db_path: Path) -> None:
    # The writer over a connection the test holds (its public constructor), so the test
    # can trace the statements it sends.
    db_path.parent.mkdir(parents=True)
    conn = connect(db_path)
    migrate(conn)
    store = SqliteStore(conn)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    progress = DeviceProgress("dev0000", None, UpdateState.UPDATING, executed_at=5.0)
    store.put_progress(progress, durable=True)
    store.put_progress(progress.evolve(message="again"))
    conn.set_trace_callback(None)
    first_commit = statements.index("COMMIT")
    assert statements[:first_commit].count("PRAGMA synchronous = FULL") == 1
    assert statements[first_commit + 1] == "PRAGMA synchronous = NORMAL"
    assert "PRAGMA synchronous = FULL" not in statements[first_commit + 1:]
    assert store.progress("dev0000") == progress.evolve(message="again")
    store.close()


def test_a_second_writer_on_the_same_state_file_is_refused_until_the_first_closes(
        state: Path | str) -> None:
    first = open_store(state)
    with pytest.raises(StateFileInUse, match="in use by another fota process"):
        open_store(state)
    first.close()
    open_store(state).close()


@pytest.mark.parametrize("link", ["symlink", "hard link"])
def test_a_second_writer_through_a_link_to_the_state_file_is_refused(
        db_path: Path, link: str) -> None:
    first = open_store(db_path)
    other = db_path.parent / "other-name.db"
    if link == "symlink":
        other.symlink_to(db_path)
    else:
        other.hardlink_to(db_path)
    try:
        with pytest.raises(StateFileInUse, match="in use by another fota process"):
            open_store(other)
        assert not (db_path.parent / "other-name.db-wal").exists()  # never a second WAL
    finally:
        first.close()
    open_store(other).close()
