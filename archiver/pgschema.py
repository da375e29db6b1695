"""Schema version 2 (browsing) on PostgreSQL: the full-text column and index, and the two views.

The search document is a generated `tsvector` column, so every writer keeps it in step without
knowing it exists (SQLite needs triggers for the same). Title, tags and lyrics carry the weights
A, B and C, which pgsearch.py ranks like the FTS5 bm25 weights. The `simple` configuration
lower-cases without stemming, and `archiver_unaccent` (the trusted `unaccent` extension behind an
immutable wrapper, as a generated column requires) drops accents, as FTS5's
`unicode61 remove_diacritics 2` tokenizer does. Frozen once released.
"""

from __future__ import annotations

from .schema_views import TRACKS_VIEW, pg_count, task_summary_view

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
    TRACKS_VIEW,
    "DROP VIEW IF EXISTS task_summary",
    task_summary_view(pg_count),
)
