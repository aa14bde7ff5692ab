"""Moving the write-ahead log into the database file, off the writer's thread.

SQLite's automatic checkpoint runs inside the COMMIT that takes the WAL past 1,000 pages,
on the thread that commits, and it syncs the database file to disk. The controller
commits on the event loop, so those commits were the loop's pauses: in
bench/big_commit.py, a revision that retargeted 200,000 devices held the loop 80-590 ms
at a time with ~30 ms of CPU, the rest waiting in COMMIT for the disk.

`Checkpointer` turns the automatic checkpoint off on the writer's connection. After a
commit (`committed()`) it starts, at most once per `EVERY` seconds and never two at
once, a short-lived thread that runs a PASSIVE checkpoint on a connection of its own:
PASSIVE copies and syncs without waiting for, or blocking, the writer or the readers.
SQLite starts the WAL over only when a writer begins while every frame is copied, which
a writer that never pauses for as long as a checkpoint takes does not: a 200,000-device
revision wrote 1.1 GB of WAL that way (bench/big_commit.py, `wal_peak_mb`). So a bulk
writer makes the pause: between its slices, from a worker thread, it calls
`catch_up()`, which copies what is there on that thread while the bulk writer waits (the
event loop's own commits go on meanwhile); unless one of those came in between, the bulk
writer's next transaction starts the WAL over. As a last bound, past `RESTART_FRAMES`
frames a checkpoint copies once more what came meanwhile, then holds the writer's lock
for a last pass over the few frames left: that pass syncs the database file while
commits wait for it (measured: up to 650 ms on a busy disk), so it is a backstop only.
Owned by `SqliteStore`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path

EVERY = 1.0  # seconds between two checkpoints while writes go on
RESTART_FRAMES = 65_536  # WAL pages (256 MiB of 4 KiB) after which the WAL must start over


class Checkpointer:
    def __init__(self, path: Path, writer: sqlite3.Connection,
                 writer_lock: AbstractContextManager[object],
                 *, every: float = EVERY, restart_frames: int = RESTART_FRAMES) -> None:
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        self._path, self._writer_lock = path, writer_lock
        self._every, self._restart_frames = every, restart_frames
        self.runs = 0  # checkpoints started
        self._thread: threading.Thread | None = None
        self._started = float("-inf")  # monotonic time the last checkpoint started
        self._lock = threading.Lock()  # committed() may be called from several threads

    def committed(self) -> None:
        """A transaction was committed: checkpoint in a worker thread if one is due."""
        now = time.monotonic()
        if now - self._started < self._every:
            return
        with self._lock:
            if now - self._started < self._every or (self._thread and self._thread.is_alive()):
                return
            self._started, self.runs = now, self.runs + 1
            self._thread = threading.Thread(target=self._checkpoint, daemon=True,
                                            name="sqlite-checkpoint")
            self._thread.start()

    def catch_up(self) -> None:
        """A checkpoint now, on the calling thread (a bulk writer's worker thread, between
        two of its transactions), after the one running in the background if any."""
        with self._lock:
            thread, self.runs = self._thread, self.runs + 1
            self._started = max(self._started, time.monotonic())
        if thread is not None:
            thread.join()
        self._checkpoint()

    def close(self) -> None:
        """Wait for a running checkpoint (before the writer closes: its close checkpoints
        what is left and removes the WAL only when it is the last connection)."""
        with self._lock:
            thread, self._started = self._thread, float("inf")  # none starts after this
        if thread is not None:
            thread.join()

    def _checkpoint(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            if _passive(conn) >= self._restart_frames:
                _passive(conn)  # what the writer added during the first pass
                with self._writer_lock:  # the few frames left: the WAL can start over
                    _passive(conn)
        except sqlite3.Error:
            pass  # the next one copies what this one left; SQLite's close does the rest
        finally:
            conn.close()


def _passive(conn: sqlite3.Connection) -> int:
    """A PASSIVE checkpoint; the number of frames in the WAL."""
    _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(frames)
