"""The WAL is copied into the database file by a worker thread, never inside a commit
of the writer (which may be the event loop's), at most once per interval; past a size
the worker takes the writer's lock for a last pass, so the WAL starts over."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from reconciler.store.checkpoint import Checkpointer
from reconciler.store.writer import connect, open_store

ROWS = 2_000  # rows of 1 KiB per transaction: ~500 pages each


class CountingLock:
    def __init__(self) -> None:
        self.lock, self.entered = threading.Lock(), 0

    def __enter__(self) -> bool:
        self.entered += 1
        return self.lock.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.lock.__exit__(None, None, None)


def _write(conn: sqlite3.Connection, transactions: int, rows: int = ROWS) -> None:
    for _ in range(transactions):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO t VALUES (?)", [(bytes(1024),)] * rows)
        conn.execute("COMMIT")


def _wal_frames(path: Path) -> int:
    other = sqlite3.connect(path)
    frames = int(other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    other.close()
    return frames


def _writer(path: Path) -> sqlite3.Connection:
    conn = connect(path)
    conn.execute("CREATE TABLE t (b BLOB)")
    return conn


def test_commits_never_checkpoint_and_a_worker_thread_does_at_most_once_per_interval(
        tmp_path: Path) -> None:
    path, lock = tmp_path / "s.db", CountingLock()
    conn = _writer(path)
    checkpointer = Checkpointer(path, conn, lock, every=3600)
    empty = path.stat().st_size
    _write(conn, 6)  # ~6 MB: SQLite's own checkpoint would have run at 1,000 pages (4 MB)
    assert path.stat().st_size == empty
    checkpointer.committed()
    checkpointer.committed()  # within the interval: no second thread
    checkpointer.close()
    assert checkpointer.runs == 1 and lock.entered == 0  # under the restart size
    assert path.stat().st_size > empty + 5 * 1024 * 1024  # the pages reached the file
    conn.close()


def test_past_the_restart_size_a_last_pass_under_the_writers_lock_lets_the_wal_start_over(
        tmp_path: Path) -> None:
    path, lock = tmp_path / "s.db", CountingLock()
    conn = _writer(path)
    checkpointer = Checkpointer(path, conn, lock, every=0, restart_frames=1_000)
    _write(conn, 3)
    assert _wal_frames(path) > 1_000
    checkpointer.committed()
    checkpointer.close()
    assert lock.entered == 1
    _write(conn, 1, rows=1)
    assert _wal_frames(path) < 10  # the writer began the WAL again from its start
    conn.close()


def test_the_store_writer_leaves_checkpoints_to_its_checkpointer(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    assert store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    store.close()


def test_a_bulk_writers_catch_up_copies_the_wal_on_its_own_thread_so_it_starts_over(
        tmp_path: Path) -> None:
    path, lock = tmp_path / "s.db", CountingLock()
    conn = _writer(path)
    checkpointer = Checkpointer(path, conn, lock, every=3600)
    _write(conn, 3)
    assert _wal_frames(path) > 1_000
    checkpointer.catch_up()
    _write(conn, 1, rows=1)
    assert _wal_frames(path) < 10 and lock.entered == 0  # without the writer's lock
    checkpointer.close()
    conn.close()
