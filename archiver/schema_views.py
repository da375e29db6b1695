"""The `tracks` and `task_summary` views (schema version 2), one text for both engines.

They differ only in how a count of asset states is spelled: SQLite sums the comparison (which
also works on its older releases), PostgreSQL counts with FILTER. Frozen once released.
"""

from __future__ import annotations

from typing import Callable

TRACKS_VIEW = """CREATE VIEW tracks AS
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
       LEFT JOIN assets im ON im.clip_pk = c.id AND im.kind = 'image'"""


def sqlite_count(condition: str) -> str:
    return f"SUM({condition})"


def pg_count(condition: str) -> str:
    return f"COUNT(*) FILTER (WHERE {condition})"


def task_summary_view(count: Callable[[str], str]) -> str:
    """The view's text with `count(condition)` spelling a count of the assets meeting it."""
    return f"""CREATE VIEW task_summary AS
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
                         {count("a.state = 'downloaded'")} AS files_downloaded,
                         {count("a.state = 'pending'")} AS files_pending,
                         {count("a.state = 'failed'")} AS files_failed,
                         SUM(CASE WHEN a.state = 'downloaded' THEN a.size END) AS bytes
                  FROM assets a JOIN clips cl ON cl.id = a.clip_pk GROUP BY cl.task_pk) a
              ON a.task_pk = t.id"""
