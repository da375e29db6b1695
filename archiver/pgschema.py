"""Schema version 2 (browsing) on PostgreSQL: the full-text column and index, and the two views.

The search document is a generated `tsvector` column, so every writer keeps it in step without
knowing it exists (SQLite needs triggers for the same). Title, tags and lyrics carry the weights
A, B and C, which pgsearch.py ranks like the FTS5 bm25 weights. The `simple` configuration
lower-cases without stemming, and `archiver_unaccent` (the trusted `unaccent` extension behind an
immutable wrapper, as a generated column requires) drops accents, as FTS5's
`unicode61 remove_diacritics 2` tokenizer does. Frozen once released.
"""

from __future__ import annotations

SEARCH_COLUMN = "search"

UNACCENT = "archiver_unaccent"

PG_BROWSE_SQL: tuple[str, ...] = (
    "CREATE EXTENSION IF NOT EXISTS unaccent",
    f"""CREATE OR REPLACE FUNCTION {UNACCENT}(text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
        AS $$ SELECT unaccent('unaccent'::regdictionary, $1) $$""",
    f"""ALTER TABLE clips ADD COLUMN IF NOT EXISTS {SEARCH_COLUMN} tsvector GENERATED ALWAYS AS (
           setweight(to_tsvector('simple'::regconfig, {UNACCENT}(coalesce(title, ''))), 'A') ||
           setweight(to_tsvector('simple'::regconfig, {UNACCENT}(coalesce(tags, ''))), 'B') ||
           setweight(to_tsvector('simple'::regconfig, {UNACCENT}(coalesce(lyrics, ''))), 'C')) STORED""",
    f"CREATE INDEX IF NOT EXISTS ix_clips_search ON clips USING GIN ({SEARCH_COLUMN})",
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
                         COUNT(*) FILTER (WHERE a.state = 'downloaded') AS files_downloaded,
                         COUNT(*) FILTER (WHERE a.state = 'pending') AS files_pending,
                         COUNT(*) FILTER (WHERE a.state = 'failed') AS files_failed,
                         SUM(CASE WHEN a.state = 'downloaded' THEN a.size END) AS bytes
                  FROM assets a JOIN clips cl ON cl.id = a.clip_pk GROUP BY cl.task_pk) a
              ON a.task_pk = t.id""",
)
