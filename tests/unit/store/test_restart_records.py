"""What a restart reads back: live registrations with their content formats, package
offers, and the migration that added them to a file written by the first schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from reconciler.model.lwm2m import ContentFormats, FirmwareOffer, PushPosition, Registration
from reconciler.store import SqliteStore, open_reader, open_store
from reconciler.store.schema import MIGRATIONS, SCHEMA_VERSION, migrate


def _reg(endpoint: str, updated_at: float, lifetime: int = 60) -> Registration:
    return Registration(f"id-{endpoint}", endpoint, "127.0.0.1", 5700, lifetime, "1.2", "U",
                        False, ("/3/0", "/5/0"), updated_at - 5, updated_at)


def test_only_registrations_whose_lifetime_has_not_run_out_are_live(store: SqliteStore) -> None:
    store.put_registration(_reg("gone", updated_at=100.0))
    store.put_registration(_reg("live", updated_at=150.0), ContentFormats(112, 110))
    assert store.live_registrations(now=170.0) == [
        (_reg("live", updated_at=150.0), ContentFormats(announced=112, read=110))]
    assert store.live_registrations(now=210.0) == []


def test_an_offer_replaces_the_endpoints_previous_one(store: SqliteStore) -> None:
    store.put_offer(FirmwareOffer("tok1", "ep-1", "img-a", expires_at=500.0))
    store.put_offer(FirmwareOffer("tok2", "ep-2", "img-a", expires_at=500.0))
    store.put_offer(FirmwareOffer("tok3", "ep-1", "img-b", expires_at=600.0))
    assert store.live_offers(now=0.0) == [FirmwareOffer("tok3", "ep-1", "img-b", 600.0),
                                          FirmwareOffer("tok2", "ep-2", "img-a", 500.0)]
    store.delete_offer("ep-2")
    assert store.live_offers(now=550.0) == [FirmwareOffer("tok3", "ep-1", "img-b", 600.0)]
    assert store.live_offers(now=600.0) == []


def test_forget_expired_deletes_only_what_ran_out(store: SqliteStore) -> None:
    store.put_registration(_reg("old", updated_at=10.0))
    store.put_registration(_reg("new", updated_at=100.0))
    store.put_offer(FirmwareOffer("t-old", "old", "i", expires_at=50.0))
    store.put_offer(FirmwareOffer("t-new", "new", "i", expires_at=150.0))
    assert store.forget_expired(now=100.0) == 2
    assert [r.endpoint for r in store.registrations()] == ["new"]
    assert [o.token for o in store.live_offers(now=0.0)] == ["t-new"]


def test_the_restart_status_reaches_the_reader(state: Path | str) -> None:
    store = open_store(state)
    reader = open_reader(state)
    try:
        assert reader.restart_status() == {}
        store.set_restart_status({"registrations": 3, "offers": 1})
        assert reader.restart_status() == {"registrations": 3, "offers": 1}
    finally:
        reader.close()
        store.close()


def test_a_first_schema_file_keeps_its_registrations_through_the_migration(
        tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS[:1])
    conn.execute("INSERT INTO registrations VALUES "
                 "('ep', 'rid', '::1', 5683, 300, '1.0', 'UQ', 1, '[\"/5/0\"]', 1.0, 2.0)")
    conn.close()
    store = open_store(path)
    try:
        [(reg, formats)] = store.live_registrations(now=3.0)
        assert (reg.endpoint, reg.queue_mode, reg.object_links) == ("ep", True, ("/5/0",))
        assert formats == ContentFormats()
        assert store.live_offers(now=0.0) == []
    finally:
        store.close()
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_push_positions_are_replaced_per_endpoint_and_deleted_in_one_batch(
        store: SqliteStore) -> None:
    a1 = PushPosition("ep-a", "img-1", "d1", 9000, 6, 2048, 10.0)
    b1 = PushPosition("ep-b", "img-1", "d1", 9000, 5, 512, 11.0)
    store.put_push_positions([a1, b1])
    a2 = PushPosition("ep-a", "img-1", "d1", 9000, 6, 5120, 12.0)
    store.put_push_positions([a2], gone=["ep-b"])
    assert store.push_positions() == [a2]
    store.put_push_positions([], gone=["ep-a", "ep-never"])
    assert store.push_positions() == []


def test_a_file_of_the_schema_before_push_positions_migrates_and_keeps_its_rows(
        tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS[:14])  # the release before push positions
    conn.execute("INSERT INTO offers VALUES ('tok', 'ep', 'img', 500.0)")
    conn.close()
    store = open_store(path)
    try:
        assert store.push_positions() == []
        assert [o.token for o in store.live_offers(now=0.0)] == ["tok"]
        store.put_push_positions([PushPosition("ep", "img", "d", 10, 6, 0, 1.0)])
        assert len(store.push_positions()) == 1
    finally:
        store.close()
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 15


def test_a_postgresql_database_before_push_positions_migrates(pg_url: str) -> None:
    import psycopg

    from reconciler.store.pg.schema import MIGRATIONS as PG_MIGRATIONS
    from reconciler.store.pg.schema import migrate as pg_migrate

    with psycopg.connect(pg_url, autocommit=True) as conn:
        pg_migrate(conn, PG_MIGRATIONS[:6])  # the release before push positions
        conn.execute("INSERT INTO offers VALUES ('tok', 'ep', 'img', 500.0)")
    store = open_store(pg_url)
    try:
        assert store.push_positions() == []
        position = PushPosition("ep", "img", "d", 1 << 20, 6, 400 * 1024, 1.5)
        store.put_push_positions([position])
        assert store.push_positions() == [position]
        assert [o.token for o in store.live_offers(now=0.0)] == ["tok"]
    finally:
        store.close()
