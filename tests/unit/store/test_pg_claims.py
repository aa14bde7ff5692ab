"""A Register's claim on PostgreSQL (issue 13, cluster write throughput): one statement,
an epoch from a sequence, and no place in the queue of the writers that take the
tallies' counter row first, so Registers at several nodes do not serialise behind one
another's progress writes. Real PostgreSQL; the other node is a second session."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg

from reconciler.model.lwm2m import NO_FORMATS, Registration
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState
from reconciler.store import open_store
from reconciler.store.pg import PgStore
from reconciler.store.pg.schema import MIGRATIONS, migrate

WAIT = 10.0  # seconds a write may take here before the test calls it stuck


def _reg(endpoint: str, port: int = 5700) -> Registration:
    return Registration(f"id-{port}", endpoint, "127.0.0.1", port, 60, "1.2", "U", False,
                        ("/3/0", "/5/0"), 100.0, 100.0)


def _in_thread(call: Callable[[], object]) -> threading.Event:
    done = threading.Event()

    def run() -> None:
        call()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done


def test_a_claim_does_not_wait_for_another_nodes_write_holding_the_counter(
        pg_store: PgStore, pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as other:
        other.execute("BEGIN")
        other.execute("SELECT n FROM change_seq FOR UPDATE")  # another node mid-write
        claimed = _in_thread(lambda: pg_store.claim_registration(_reg("ep-0"), NO_FORMATS,
                                                                 "node-a"))
        progress = DeviceProgress("dev0000", None, UpdateState.PENDING)
        ordered = _in_thread(lambda: pg_store.put_progress(progress))
        assert claimed.wait(WAIT)  # took no place in the queue
        assert not ordered.wait(0.2)  # a progress write still queues behind the other
        other.execute("COMMIT")
        assert ordered.wait(WAIT)
    assert list(pg_store.adopt_registrations("node-a", 0.0)) == ["ep-0"]


def test_epochs_continue_past_what_the_meta_counter_handed_out(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        migrate(conn, MIGRATIONS[:3])  # a database of the release before the sequence
        conn.execute("UPDATE meta SET value = '41' WHERE key = 'ownership_epoch'")
    store = open_store(pg_url)
    try:
        first = store.claim_registration(_reg("ep-0"), NO_FORMATS, "node-a")
        again = store.claim_registration(_reg("ep-0", 5701), NO_FORMATS, "node-a")
        moved = store.claim_registration(_reg("ep-0", 5702), NO_FORMATS, "node-b")
    finally:
        store.close()
    assert first > 41 and again == first and moved > first
