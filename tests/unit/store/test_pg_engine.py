"""What only the PostgreSQL store has (the engine-neutral behaviour runs against both
engines through the `store` and `state` fixtures): its schema version table, the
durable commit, a session the server dropped, the NOTIFY of appended events and the
reader's version over the server's snapshots. Real PostgreSQL (tests/pgcluster.py)."""

from __future__ import annotations

import socket
from typing import Any

import psycopg
import pytest

from bench.pgcluster import TESTS_DB, PgCluster
from reconciler.model.observed import DeviceEvent, DeviceProgress
from reconciler.model.status import UpdateState
from reconciler.serve.settings import ServeSettings
from reconciler.store import open_reader, open_store
from reconciler.store.pg import EVENTS_CHANNEL, PgReader, PgStore
from reconciler.store.pg.connection import connect
from reconciler.store.schema import SchemaError


def _admin(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def test_a_database_from_a_newer_release_is_refused_by_writer_and_reader(
        pg_url: str) -> None:
    open_store(pg_url).close()
    _admin(pg_url, "UPDATE schema_version SET version = version + 1")
    with pytest.raises(SchemaError, match="newer"):
        open_store(pg_url)
    with pytest.raises(SchemaError, match="schema version"):
        open_reader(pg_url)


def test_only_a_durable_write_waits_for_the_flush_of_its_commit(pg_store: PgStore) -> None:
    def setting(durable: bool) -> str:
        with pg_store._write(durable=durable) as conn:
            return str(conn.execute("SHOW synchronous_commit").fetchone()[0])
    assert (setting(True), setting(False)) == ("on", "off")
    with pg_store._write(durable=False) as conn:  # SET LOCAL ended with its transaction
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "off"


def test_a_session_the_server_dropped_fails_one_call_and_the_next_reconnects(
        pg_store: PgStore, pg_url: str) -> None:
    progress = DeviceProgress("dev0000", None, UpdateState.PENDING)
    _admin(pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   "WHERE application_name = 'fota-writer'")
    with pytest.raises(psycopg.OperationalError):
        pg_store.put_progress(progress)
    pg_store.put_progress(progress)
    assert pg_store.progress("dev0000") == progress
    with pytest.raises(Exception, match="in use by another fota process"):
        open_store(pg_url)  # the new session took the writer's lock again


def test_a_commit_that_appended_events_notifies_other_processes_once(
        pg_store: PgStore, pg_url: str) -> None:
    store = pg_store
    with psycopg.connect(pg_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {EVENTS_CHANNEL}")
        events = [DeviceEvent("dev0000", float(i), "state", f"#{i}") for i in range(3)]
        store.put_progress(DeviceProgress("dev0000", None, UpdateState.PENDING), events)
        store.put_progress(DeviceProgress("dev0000", None, UpdateState.PENDING))  # none
        got = list(listener.notifies(timeout=0.5))
    assert [n.channel for n in got] == [EVENTS_CHANNEL]


def test_the_readers_version_moves_with_each_commit_and_only_then(
        pg_store: PgStore, pg_url: str) -> None:
    reader = open_reader(pg_url)
    try:
        before = reader.version()
        assert reader.version() == before  # reads commit nothing
        pg_store.set_restart_status({"restored": 1})
        after = reader.version()
        assert after != before and reader.version() == after
    finally:
        reader.close()


def _tcp_options(conn: psycopg.Connection[Any]) -> tuple[int, int, int, int, int]:
    """What libpq set on the connection's socket: (SO_KEEPALIVE, idle, interval, count,
    TCP_USER_TIMEOUT)."""
    with socket.fromfd(conn.fileno(), socket.AF_INET, socket.SOCK_STREAM) as sock:
        return (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT))


def test_connections_over_tcp_carry_keepalives_and_a_user_timeout_from_the_settings(
        pg_cluster: PgCluster, pg_url: str) -> None:
    """A database behind a dead path fails a call within about a minute: the writer's
    session and the API's pool carry the `pg_*` settings; a parameter the URL names
    itself wins, and a connection made without settings has the defaults."""
    schema = pg_url.rpartition("%3D")[2]  # the pg_url fixture's schema, over TCP
    url = f"{pg_cluster.tcp_url(TESTS_DB)}?options=-csearch_path%3D{schema}"
    settings = ServeSettings.load({"state": url + "&keepalives_count=5",
                                   "pg_keepalives_idle": 7, "pg_tcp_user_timeout": 4000},
                                  environ={})
    store, reader = open_store(settings.store_location()), open_reader(settings.store_location())
    try:
        assert isinstance(store, PgStore) and isinstance(reader, PgReader)
        with reader._pool.connection() as pooled:
            for conn in (store._pg.raw, pooled):
                assert _tcp_options(conn) == (1, 7, 10, 5, 4000)
                assert conn.info.get_parameters()["tcp_user_timeout"] == "4000"
    finally:
        store.close()
        reader.close()
    # A session as `fota plan --against` or a benchmark opens it (the store's `connect`):
    # not a second writer, whose lock the first one's backend may not have released yet
    # (it ends after our close returns: "in use by another fota process" under load).
    plain = connect(url, application="fota-writer")
    try:
        assert _tcp_options(plain) == (1, 30, 10, 3, 30_000)
    finally:
        plain.close()
