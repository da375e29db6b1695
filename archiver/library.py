"""Read-side queries over the library: what `tasks`, `ls` and friends show.

Plain SQL through the store's engine: one query per listing, never one per row, so browsing
20,000 clips stays quick.
"""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import text

from .models import UTCDateTime
from .store import Store

TASK_COLUMNS = ("source", "task_id", "status", "provider_status", "progress", "error", "clips",
                "created_at", "finished_at", "first_seen", "last_polled", "next_poll_at")

CLIP_COLUMNS = ("source", "task_id", "clip_id", "title", "tags", "negative_tags", "lyrics", "duration",
                "model", "seed", "created_at", "status", "audio_url", "image_url", "video_url",
                "audio_path", "image_path")

_TIME_FIELDS = {"created_at", "finished_at", "first_seen", "last_polled", "next_poll_at"}


def _where(filters: dict[str, Sequence[str] | None], alias: dict[str, str]) -> tuple[str, dict[str, Any]]:
    clauses, params = [], {}
    for name, values in filters.items():
        if not values:
            continue
        keys = []
        for i, value in enumerate(values):
            key = f"{name}_{i}"
            params[key] = value
            keys.append(f":{key}")
        clauses.append(f"{alias[name]} IN ({', '.join(keys)})")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _row(mapping: Any, columns: Sequence[str]) -> dict[str, Any]:
    out = {name: mapping[name] for name in columns}
    for name in _TIME_FIELDS & out.keys():
        value = out[name]
        # stored as ISO 8601 UTC text already; normalise the spelling for output
        out[name] = UTCDateTime().process_result_value(value, None).isoformat().replace("+00:00", "Z") if value else None
    return out


def list_tasks(store: Store, *, sources: Sequence[str] | None = None,
               statuses: Sequence[str] | None = None) -> list[dict[str, Any]]:
    where, params = _where({"source": sources, "status": statuses}, {"source": "t.source", "status": "t.status"})
    sql = f"""
        SELECT t.source, t.task_id, t.status, t.provider_status, t.progress, t.error,
               (SELECT COUNT(*) FROM clips c WHERE c.task_pk = t.id) AS clips,
               t.created_at, t.finished_at, t.first_seen, t.last_polled, t.next_poll_at
        FROM tasks t{where}
        ORDER BY t.source, COALESCE(t.created_at, t.first_seen), t.task_id"""
    with store.engine.connect() as conn:
        return [_row(r._mapping, TASK_COLUMNS) for r in conn.execute(text(sql), params)]


CLIP_SELECT = """
    SELECT c.source, t.task_id, c.clip_id, c.title, c.tags, c.negative_tags, c.lyrics, c.duration,
           c.model, c.seed, c.created_at, t.status, c.audio_url, c.image_url, c.video_url,
           (SELECT a.path FROM assets a WHERE a.clip_pk = c.id AND a.kind = 'audio'
                AND a.state = 'downloaded') AS audio_path,
           (SELECT a.path FROM assets a WHERE a.clip_pk = c.id AND a.kind = 'image'
                AND a.state = 'downloaded') AS image_path
    FROM clips c JOIN tasks t ON t.id = c.task_pk"""


def list_clips(store: Store, *, sources: Sequence[str] | None = None) -> list[dict[str, Any]]:
    where, params = _where({"source": sources}, {"source": "c.source"})
    sql = f"{CLIP_SELECT}{where} ORDER BY c.created_at, c.source, c.clip_id"
    with store.engine.connect() as conn:
        return [_row(r._mapping, CLIP_COLUMNS) for r in conn.execute(text(sql), params)]
