"""Schema versions, kept in `PRAGMA user_version`, and the steps between them.

A new library gets the current schema at once. An older one is moved forward step by step, each
step in its own transaction, so a release that changes the schema upgrades a library in place
without losing rows. Add a step by appending a function to STEPS; never edit a released one.
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from . import models  # noqa: F401  (registers the tables on SQLModel.metadata)


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
    """CREATE VIEW tracks AS
       SELECT c.id AS clip_pk, c.source, t.task_id, c.clip_id, t.status, c.title, c.tags,
              c.negative_tags, c.lyrics, c.duration, c.model, c.seed, c.created_at,
              c.audio_url, c.image_url, c.video_url,
              CASE WHEN au.state = 'downloaded' THEN au.path END AS audio_path,
              CASE WHEN au.state = 'downloaded' THEN au.size END AS audio_size,
              CASE WHEN au.state = 'downloaded' THEN au.sha256 END AS audio_sha256,
              au.state AS audio_state, au.tagged AS audio_tagged,
              CASE WHEN im.state = 'downloaded' THEN im.path END AS image_path
       FROM clips c
       JOIN tasks t ON t.id = c.task_pk
       LEFT JOIN assets au ON au.clip_pk = c.id AND au.kind = 'audio'
       LEFT JOIN assets im ON im.clip_pk = c.id AND im.kind = 'image'""",
    "DROP VIEW IF EXISTS task_summary",
    """CREATE VIEW task_summary AS
       SELECT t.id AS task_pk, t.source, t.task_id, t.status, t.provider_status, t.progress, t.error,
              t.created_at, t.finished_at, t.last_polled,
              COALESCE(c.clips, 0) AS clips, c.duration,
              COALESCE(a.files_downloaded, 0) AS files_downloaded,
              COALESCE(a.files_pending, 0) AS files_pending,
              COALESCE(a.files_failed, 0) AS files_failed,
              COALESCE(a.bytes, 0) AS bytes
       FROM tasks t
       LEFT JOIN (SELECT task_pk, COUNT(*) AS clips, SUM(duration) AS duration
                  FROM clips GROUP BY task_pk) c ON c.task_pk = t.id
       LEFT JOIN (SELECT cl.task_pk,
                         SUM(a.state = 'downloaded') AS files_downloaded,
                         SUM(a.state = 'pending') AS files_pending,
                         SUM(a.state = 'failed') AS files_failed,
                         SUM(CASE WHEN a.state = 'downloaded' THEN a.size END) AS bytes
                  FROM assets a JOIN clips cl ON cl.id = a.clip_pk GROUP BY cl.task_pk) a
              ON a.task_pk = t.id""",
)


def _v2_browse(conn: Connection) -> None:
    for statement in _V2_SQL:
        conn.exec_driver_sql(statement)


STEPS: list[Callable[[Connection], None]] = [_v1_tables, _v2_browse]
SCHEMA_VERSION = len(STEPS)


def current_version(conn: Connection) -> int:
    return int(conn.execute(text("PRAGMA user_version")).scalar() or 0)


def migrate(engine: Engine) -> int:
    """Bring the database to SCHEMA_VERSION; returns the version it started at."""
    with engine.begin() as conn:
        start = current_version(conn)
        if start > SCHEMA_VERSION:
            from .errors import DatabaseError

            raise DatabaseError(
                f"the library database has schema version {start}, newer than this archiver "
                f"understands ({SCHEMA_VERSION}); upgrade archiver"
            )
    for version in range(start, SCHEMA_VERSION):
        with engine.begin() as conn:
            STEPS[version](conn)
            conn.execute(text(f"PRAGMA user_version = {version + 1}"))
    return start
