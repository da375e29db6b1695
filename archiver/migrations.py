"""Schema versions, kept in `PRAGMA user_version` (PostgreSQL: the `archiver_schema` row), and the
steps between them, each written for both engines.

A new library gets the current schema at once. An older one is moved forward step by step, each
step in its own transaction, so a release that changes the schema upgrades a library in place
without losing rows. Add a step by appending a function to STEPS; never edit a released one.

Each step runs under SQLite's write lock (`BEGIN IMMEDIATE`) and re-reads the version inside it,
so two processes opening a new library at once (`add` and `sync` from cron) create the schema
once: the second waits for the first and then finds nothing left to do. On PostgreSQL the whole
migration is one transaction under an advisory lock, so a fleet of workers starting together
migrates once.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from .models import UTCDateTime, utcnow  # importing models registers the tables on SQLModel.metadata
from .pgdb import VERSION_TABLE
from .pgschema import PG_BROWSE_SQL
from .schema_views import TRACKS_VIEW, sqlite_count, task_summary_view
from .readdb import PATH_TRIGGERS, READABLE_FROM, SCHEMA_VERSION, refuse_newer

__all__ = ["READABLE_FROM", "SCHEMA_VERSION", "STEPS", "current_version", "migrate", "refuse_newer"]


def _v1_tables(conn: Connection) -> None:
    SQLModel.metadata.create_all(conn)


# Version 2: browsing. An external-content FTS5 index over clips(title, lyrics, tags), kept in
# step by triggers so that every writer (store.py, raw SQL, sqlite3, cascading task deletes)
# updates it without knowing it exists; friendly views for sqlite3/Datasette; an index for
# duration ranges and sorts. Frozen once released: change these in a new step.
_V2_SQL = (
    """CREATE VIRTUAL TABLE IF NOT EXISTS clips_fts USING fts5(
           title, lyrics, tags, content='clips', content_rowid='id',
           tokenize='unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER IF NOT EXISTS clips_fts_insert AFTER INSERT ON clips BEGIN
           INSERT INTO clips_fts(rowid, title, lyrics, tags) VALUES (new.id, new.title, new.lyrics, new.tags);
       END""",
    """CREATE TRIGGER IF NOT EXISTS clips_fts_delete AFTER DELETE ON clips BEGIN
           INSERT INTO clips_fts(clips_fts, rowid, title, lyrics, tags)
               VALUES ('delete', old.id, old.title, old.lyrics, old.tags);
       END""",
    """CREATE TRIGGER IF NOT EXISTS clips_fts_update AFTER UPDATE OF title, lyrics, tags ON clips BEGIN
           INSERT INTO clips_fts(clips_fts, rowid, title, lyrics, tags)
               VALUES ('delete', old.id, old.title, old.lyrics, old.tags);
           INSERT INTO clips_fts(rowid, title, lyrics, tags) VALUES (new.id, new.title, new.lyrics, new.tags);
       END""",
    "INSERT INTO clips_fts(clips_fts) VALUES ('rebuild')",
    "CREATE INDEX IF NOT EXISTS ix_clips_duration ON clips (duration)",
    "DROP VIEW IF EXISTS tracks",
    TRACKS_VIEW,
    "DROP VIEW IF EXISTS task_summary",
    task_summary_view(sqlite_count),
)


def _is_pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _v2_browse(conn: Connection) -> None:
    for statement in PG_BROWSE_SQL if _is_pg(conn) else _V2_SQL:
        conn.exec_driver_sql(statement)


def _v3_not_found_since(conn: Connection) -> None:
    """When a task's current run of not-found answers began: it fails only after days of them.

    Version 1 builds the tables from the current models, so a new library has the column already.
    """
    if _is_pg(conn):
        conn.exec_driver_sql("ALTER TABLE tasks ADD COLUMN IF NOT EXISTS not_found_since VARCHAR(32)")
        return
    columns = {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(tasks)")}
    if "not_found_since" not in columns:
        conn.exec_driver_sql("ALTER TABLE tasks ADD COLUMN not_found_since VARCHAR(32)")


# Version "fts for Datasette": the same index declared with `content="clips"`. Datasette finds
# a table's full-text index by matching its CREATE statement against `content="<table>"` or
# `content=[<table>]` only; with `content='clips'` its search box silently matched every row.
# FTS5 reads the three quotings alike; the table, its triggers and its contents are recreated.
_FTS_DATASETTE_SQL = (
    "DROP TRIGGER IF EXISTS clips_fts_insert",
    "DROP TRIGGER IF EXISTS clips_fts_delete",
    "DROP TRIGGER IF EXISTS clips_fts_update",
    "DROP TABLE IF EXISTS clips_fts",
    """CREATE VIRTUAL TABLE clips_fts USING fts5(
           title, lyrics, tags, content="clips", content_rowid="id",
           tokenize='unicode61 remove_diacritics 2')""",
    *_V2_SQL[1:5],  # version 2's three triggers and the rebuild, unchanged
)


def _v4_fts_for_datasette(conn: Connection) -> None:
    if _is_pg(conn):
        return  # PostgreSQL's text search has no Datasette declaration to match
    for statement in _FTS_DATASETTE_SQL:
        conn.exec_driver_sql(statement)


def _v5_clip_created(conn: Connection) -> None:
    """Every clip gets a creation time, stored once, so that `year:` and sorting by date find all of them.

    A clip whose payload had none (MountSea sends none) takes its task's, else when the task ended,
    else when it was first seen; a row with none of these known takes the time of this step.
    """
    conn.execute(text(
        """UPDATE clips SET created_at = COALESCE(
               (SELECT COALESCE(t.created_at, t.finished_at) FROM tasks t WHERE t.id = clips.task_pk),
               clips.first_seen,
               (SELECT t.first_seen FROM tasks t WHERE t.id = clips.task_pk),
               clips.updated_at, :now)
           WHERE created_at IS NULL"""), {"now": UTCDateTime().process_bind_param(utcnow(), None)})


# Version 6: a fleet of sync workers on one catalog (claims.py). Claims with a lease on tasks and
# assets, the workers and their heartbeats, the final paths' stems claimed before placing, the
# providers' shared request slots and retry budget. SQLite has one writer (the file lock) and
# leaves them empty; the schema stays the same on both engines.
_FLEET_TABLES = (
    """CREATE TABLE IF NOT EXISTS workers (
           name VARCHAR PRIMARY KEY, host VARCHAR, pid INTEGER, started_at VARCHAR(32),
           heartbeat_at VARCHAR(32), lease_until VARCHAR(32), finished_at VARCHAR(32), exit_code INTEGER,
           run_id INTEGER)""",
    """CREATE TABLE IF NOT EXISTS path_claims (
           stem VARCHAR PRIMARY KEY, clip_pk INTEGER NOT NULL, claimed_by VARCHAR, claimed_at VARCHAR(32))""",
    """CREATE TABLE IF NOT EXISTS provider_slots (
           provider VARCHAR NOT NULL, slot INTEGER NOT NULL, claimed_by VARCHAR, lease_until VARCHAR(32),
           PRIMARY KEY (provider, slot))""",
    """CREATE TABLE IF NOT EXISTS retry_budget (
           name VARCHAR PRIMARY KEY, window_start VARCHAR(32), used INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS ix_tasks_claimed_by ON tasks (claimed_by)",
    "CREATE INDEX IF NOT EXISTS ix_assets_claimed_by ON assets (claimed_by)",
)


def _v6_fleet(conn: Connection) -> None:
    for table in ("tasks", "assets"):
        if _is_pg(conn):
            columns: set[str] = set()
        else:
            columns = {row[1] for row in conn.exec_driver_sql(f"PRAGMA table_info({table})")}
        for column in ("claimed_by", "lease_until"):
            if column not in columns:
                kind = "VARCHAR" if column == "claimed_by" else "VARCHAR(32)"
                exists = " IF NOT EXISTS" if _is_pg(conn) else ""
                conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN{exists} {column} {kind}")
    for statement in _FLEET_TABLES:
        conn.exec_driver_sql(statement)


# Version 7: one row that changes whenever a recorded path does, so an idle sync (idle.py) tells
# "the same paths as at the last walk" without reading 40,000 of them. Triggers count every path
# an asset gains, changes or loses through INSERT, UPDATE (of the path or of a unique key, which
# UPDATE OR REPLACE may make collide) and DELETE, cascading deletes included, whoever writes them.
# Not counted: INSERT OR REPLACE of a row without a path over one with a path (SQLite fires no
# delete trigger for it), and a connection with triggers switched off; archiver does neither, and
# the next folder change brings the walk back. The generation is random for a new database and
# drawn again each time an idle run stamps the library, so a restored copy is not taken for it.
# PostgreSQL has no idle check (the library's SQLite file is what it reads).
_BUMP = "BEGIN UPDATE path_changes SET changes = changes + 1 WHERE id = 1; END"
_INSERTED, _UPDATED, _DELETED = PATH_TRIGGERS
_PATH_CHANGES_SQL = (
    """CREATE TABLE IF NOT EXISTS path_changes (
           id INTEGER PRIMARY KEY CHECK (id = 1), generation VARCHAR NOT NULL, changes INTEGER NOT NULL)""",
    "INSERT OR IGNORE INTO path_changes (id, generation, changes) VALUES (1, lower(hex(randomblob(16))), 0)",
    f"CREATE TRIGGER IF NOT EXISTS {_INSERTED} AFTER INSERT ON assets WHEN new.path IS NOT NULL {_BUMP}",
    f"""CREATE TRIGGER IF NOT EXISTS {_UPDATED} AFTER UPDATE OF path, id, clip_pk, kind ON assets
           WHEN old.path IS NOT new.path OR old.id IS NOT new.id OR old.clip_pk IS NOT new.clip_pk
                OR old.kind IS NOT new.kind {_BUMP}""",
    f"CREATE TRIGGER IF NOT EXISTS {_DELETED} AFTER DELETE ON assets WHEN old.path IS NOT NULL {_BUMP}",
)


def _v7_path_changes(conn: Connection) -> None:
    if _is_pg(conn):
        return
    for statement in _PATH_CHANGES_SQL:
        conn.exec_driver_sql(statement)


STEPS: list[Callable[[Connection], None]] = [_v1_tables, _v2_browse, _v3_not_found_since, _v4_fts_for_datasette,
                                              _v5_clip_created, _v6_fleet, _v7_path_changes]
# readdb holds the version too, for readers that import no ORM: a new step raises it there.
if len(STEPS) != SCHEMA_VERSION:
    raise RuntimeError(f"readdb.SCHEMA_VERSION is {SCHEMA_VERSION} but migrations has {len(STEPS)} steps")


def current_version(conn: Connection) -> int:
    if _is_pg(conn):
        if not conn.exec_driver_sql(f"SELECT to_regclass('{VERSION_TABLE}') IS NOT NULL").scalar():
            return 0
        return int(conn.exec_driver_sql(f"SELECT version FROM {VERSION_TABLE}").scalar() or 0)
    return int(conn.execute(text("PRAGMA user_version")).scalar() or 0)


def _set_version(conn: Connection, version: int) -> None:
    if _is_pg(conn):
        conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER NOT NULL)")
        conn.exec_driver_sql(f"DELETE FROM {VERSION_TABLE}")
        conn.exec_driver_sql(f"INSERT INTO {VERSION_TABLE} (version) VALUES ({int(version)})")
        return
    conn.execute(text(f"PRAGMA user_version = {version}"))


# Any fixed 64-bit number: the key of the advisory lock every migrating worker takes.
_MIGRATION_LOCK = 0x61726368_6d696772


def migrate(engine: Engine) -> int:
    """Bring the database to SCHEMA_VERSION; returns the version it started at."""
    with engine.connect() as conn:
        start = current_version(conn)
    refuse_newer(start)
    if engine.dialect.name == "postgresql":
        if start < SCHEMA_VERSION:
            with engine.begin() as conn:  # DDL is transactional: all steps or none
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
                found = current_version(conn)  # another worker may have migrated meanwhile
                refuse_newer(found)
                for version in range(found, SCHEMA_VERSION):
                    STEPS[version](conn)
                _set_version(conn, max(found, SCHEMA_VERSION))
        return start
    for version in range(start, SCHEMA_VERSION):
        with _write_locked(engine) as conn:
            found = current_version(conn)  # another process may have done this step meanwhile
            refuse_newer(found)
            if found > version:
                continue
            STEPS[version](conn)
            _set_version(conn, version + 1)
    return start


@contextmanager
def _write_locked(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds SQLite's write lock from its first statement (`BEGIN IMMEDIATE`).

    The sqlite3 module would begin lazily, after our version check; driving the transaction
    ourselves makes the check and the step one atomic unit. Other databases use a plain one.
    """
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    with engine.connect() as conn:
        driver = conn.connection.driver_connection
        level = driver.isolation_level
        driver.isolation_level = None  # autocommit mode: no implicit BEGIN before ours
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                driver.rollback()
                raise
            driver.commit()
        finally:
            driver.isolation_level = level
