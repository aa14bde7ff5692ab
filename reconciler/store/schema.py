"""The SQLite schema and its versioned migrations (PRAGMA user_version).

`migrate(conn)` brings any older file up to `SCHEMA_VERSION`, one transaction per step, so
a crash mid-migration leaves the previous version intact. Called by `open_store` only; the
read-only reader refuses a file whose version it does not know.
"""

from __future__ import annotations

import sqlite3

from reconciler.store import tallies

# Each entry upgrades from version i to i + 1. Append only: never edit a shipped step.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE collections (
        collection_id TEXT PRIMARY KEY, name TEXT NOT NULL, management TEXT NOT NULL,
        target_image_id TEXT, tags TEXT NOT NULL, rollout TEXT NOT NULL);
    CREATE TABLE images (
        image_id TEXT PRIMARY KEY, collection_id TEXT NOT NULL, version TEXT NOT NULL,
        filename TEXT NOT NULL, sha256 TEXT NOT NULL, length INTEGER NOT NULL,
        created INTEGER NOT NULL, path TEXT NOT NULL, tags TEXT NOT NULL);
    CREATE INDEX images_by_collection ON images (collection_id, version);
    -- target_image_id is the effective target (management scope applied);
    -- current_image_id is the image whose version the device reports (derived, kept
    -- up to date by put_report and apply_desired so usage is an index lookup).
    CREATE TABLE devices (
        device_id TEXT PRIMARY KEY, collection_id TEXT NOT NULL, endpoint TEXT NOT NULL,
        own_target_image_id TEXT, target_image_id TEXT, current_image_id TEXT,
        tags TEXT NOT NULL);
    CREATE INDEX devices_by_collection ON devices (collection_id, device_id);
    CREATE INDEX devices_by_collection_current ON devices (collection_id, current_image_id);
    CREATE INDEX devices_by_target ON devices (target_image_id, device_id);
    CREATE INDEX devices_by_current ON devices (current_image_id, device_id);
    CREATE INDEX devices_by_endpoint ON devices (endpoint);
    CREATE TABLE registrations (
        endpoint TEXT PRIMARY KEY, registration_id TEXT NOT NULL, host TEXT NOT NULL,
        port INTEGER NOT NULL, lifetime INTEGER NOT NULL, lwm2m_version TEXT NOT NULL,
        binding TEXT NOT NULL, queue_mode INTEGER NOT NULL, object_links TEXT NOT NULL,
        registered_at REAL NOT NULL, updated_at REAL NOT NULL);
    CREATE TABLE reports (
        device_id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, firmware_version TEXT,
        serial_number TEXT, model_number TEXT, manufacturer TEXT, fw_state INTEGER,
        update_result INTEGER, delivery_method INTEGER, reported_at REAL NOT NULL);
    CREATE TABLE progress (
        device_id TEXT PRIMARY KEY, target_image_id TEXT, state TEXT NOT NULL,
        message TEXT NOT NULL, attempts INTEGER NOT NULL, retries_left INTEGER NOT NULL,
        from_version TEXT, attempt_token TEXT, last_action TEXT NOT NULL,
        phase_started_at REAL, deadline REAL, next_attempt_at REAL, executed_at REAL,
        updated_at REAL NOT NULL);
    CREATE INDEX progress_by_state ON progress (state);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL, at REAL NOT NULL,
        kind TEXT NOT NULL, message TEXT NOT NULL, revision TEXT NOT NULL);
    CREATE INDEX events_by_device ON events (device_id, seq);
    CREATE TABLE conditions (
        subject TEXT NOT NULL, type TEXT NOT NULL, status INTEGER NOT NULL,
        reason TEXT NOT NULL, message TEXT NOT NULL, last_transition REAL NOT NULL,
        revision TEXT NOT NULL, PRIMARY KEY (subject, type));
    CREATE TABLE collection_status (collection_id TEXT PRIMARY KEY, status TEXT NOT NULL);
    """,
    # 2: what a restart needs to resume at once: the formats each device told us about,
    # beside its registration, and the package URIs handed out (token -> image, device).
    """
    ALTER TABLE registrations ADD COLUMN announced_format INTEGER;
    ALTER TABLE registrations ADD COLUMN read_format INTEGER;
    CREATE TABLE offers (
        token TEXT PRIMARY KEY, endpoint TEXT NOT NULL UNIQUE, image_id TEXT NOT NULL,
        expires_at REAL NOT NULL);
    CREATE INDEX offers_by_expiry ON offers (expires_at);
    """,
    # 3: written and never read (issue 14 item 6).
    """
    -- The attempt count names the attempt, Reverted is told by
    -- the re-registration, and the state says what was done last.
    ALTER TABLE progress DROP COLUMN from_version;
    ALTER TABLE progress DROP COLUMN attempt_token;
    ALTER TABLE progress DROP COLUMN last_action;
    """,
    # 4: the engine bounds the Object 5 reset before an attempt (issue 8 item 3).
    """
    ALTER TABLE progress ADD COLUMN resets INTEGER NOT NULL DEFAULT 0;
    """,
    # 5: the engine asks a device after Execute and re-sends a lost one (issue 8 item 10).
    """
    ALTER TABLE progress ADD COLUMN probes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE progress ADD COLUMN executes INTEGER NOT NULL DEFAULT 0;
    """,
    # 6: the event log read as a feed by collection (issue 11 item 2): the device's
    # collection when the event was written, so the filter is an index range, not a join
    # over the whole log.
    """
    ALTER TABLE events ADD COLUMN collection_id TEXT;
    UPDATE events SET collection_id =
        (SELECT collection_id FROM devices WHERE devices.device_id = events.device_id);
    CREATE INDEX events_by_collection ON events (collection_id, seq);
    """,
    # 7: drift (issue 10 item 4): why a device that had reached its target is Drifted.
    """
    ALTER TABLE progress ADD COLUMN drift TEXT;
    """,
    # 8: devices per collection and state, and each device's last change, kept by
    # triggers: /status and /metrics count without a scan, the API's cache renders
    # only what changed (issue 11).
    tallies.MIGRATION,
    # 9: the retry counter a device's record last saw, so a restart never retries twice
    # for one raise in git (issue 10 item 3).
    """
    ALTER TABLE progress ADD COLUMN retry INTEGER NOT NULL DEFAULT 0;
    """,
    # 10: the dashboard's device pages filtered by a recorded state walk this index in
    # device id order from their cursor and stop after a page (issue 11 item 4); it
    # answers everything (state) alone did, so that one goes.
    """
    CREATE INDEX progress_by_state_device ON progress (state, device_id);
    DROP INDEX progress_by_state;
    """,
    # 11: several nodes (issue 13): the node a device registered with owns it, at an
    # epoch taken from one store-wide counter whenever ownership moves, so an epoch is
    # never handed out twice (not even after the row was deleted and written again);
    # the nodes' leases say which are alive.
    """
    ALTER TABLE registrations ADD COLUMN owner TEXT;
    ALTER TABLE registrations ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
    INSERT OR IGNORE INTO meta VALUES ('ownership_epoch', '0');
    CREATE TABLE nodes (node TEXT PRIMARY KEY, lease_until REAL NOT NULL,
                        seen_at REAL NOT NULL);
    """,
    # 12: a registration made inside a DTLS session (issue 12): after a restart it waits
    # for the device's next session, and nothing goes to its address as plain CoAP.
    """
    ALTER TABLE registrations ADD COLUMN secured INTEGER NOT NULL DEFAULT 0;
    """,
    # 13: the collection status row of several nodes (issue 13): the revision and feed
    # position it was computed at, so a lagging node's write cannot replace a newer one,
    # and the halt seen in that revision (`store.collection_status`).
    """
    ALTER TABLE collection_status ADD COLUMN revision TEXT;
    ALTER TABLE collection_status ADD COLUMN stamp INTEGER;
    ALTER TABLE collection_status ADD COLUMN halt TEXT;
    """,
    # 14: a push cut short is resumed, a bounded number of times an attempt (issue 8):
    # the resumptions so far and when the latest push went out, so that after our
    # restart the cap holds and a push our restart cut is told from an earlier one's.
    """
    ALTER TABLE progress ADD COLUMN resumes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE progress ADD COLUMN pushed_at REAL;
    """,
    # 15: how far each push came (issue 8): the bytes the device acknowledged, with the
    # image, its digest and the block size they count in, so a push our restart cut
    # resumes there and not at block 0. One row per endpoint with a push under way,
    # deleted when its update ends.
    """
    CREATE TABLE push_positions (
        endpoint TEXT PRIMARY KEY, image_id TEXT NOT NULL, digest TEXT NOT NULL,
        size INTEGER NOT NULL, szx INTEGER NOT NULL, acknowledged INTEGER NOT NULL,
        at REAL NOT NULL);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaError(RuntimeError):
    """The file was written by a newer fota-gitops (or is not ours)."""


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, migrations: tuple[str, ...] = MIGRATIONS) -> int:
    """Apply every missing step; returns the resulting version."""
    current = user_version(conn)
    if current > len(migrations):
        raise SchemaError(f"store schema version {current} is newer than {len(migrations)}")
    for version in range(current, len(migrations)):
        # executescript would COMMIT on its own; run the statements inside one explicit
        # transaction so the version bump and the DDL land together or not at all.
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(migrations[version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(migrations)


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (our DDL has no ';' inside literals; a
    trigger's body holds several, so pieces join until SQLite calls one complete)."""
    lines = [ln for ln in script.splitlines() if not ln.strip().startswith("--")]
    statements, pending = [], ""
    for piece in "\n".join(lines).split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    return statements
