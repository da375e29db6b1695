"""The library as a whole: what `stats` and the web app's stats page and filters show.

Aggregates over every task, clip and file rather than a listing of rows, so they live apart from
library.py's listings and detail; they run through library.select, on any reader it takes.
"""

from __future__ import annotations

from typing import Any

from .fields import MAX_DURATION, AssetState
from .library import Reader, select, select_values, shape_row


def stats(store: Reader) -> dict[str, Any]:
    """Counts by source and status, duration, bytes on disk, file states and the last sync."""
    by_source: dict[str, dict[str, Any]] = {}
    by_status: dict[str, int] = {}
    for source, status, count in select_values(store, "SELECT source, status, COUNT(*) FROM tasks GROUP BY 1, 2"):
        entry = by_source.setdefault(source, {"tasks": 0, "statuses": {}, "clips": 0, "duration": 0.0})
        entry["tasks"] += count
        entry["statuses"][status] = count
        by_status[status] = by_status.get(status, 0) + count
    clips_total, duration_total = 0, 0.0
    plausible = f"CASE WHEN duration > 0 AND duration < {MAX_DURATION!r} THEN duration END"
    for source, count, duration in select_values(
            store, f"SELECT source, COUNT(*), COALESCE(SUM({plausible}), 0) FROM clips GROUP BY 1"):
        entry = by_source.setdefault(source, {"tasks": 0, "statuses": {}, "clips": 0, "duration": 0.0})
        entry["clips"], entry["duration"] = count, float(duration)
        clips_total += count
        duration_total += float(duration)
    files = {state.value: 0 for state in (AssetState.DOWNLOADED, AssetState.PENDING, AssetState.FAILED)}
    bytes_on_disk = 0
    for state, count, size in select_values(
            store, "SELECT state, COUNT(*), COALESCE(SUM(size), 0) FROM assets GROUP BY 1"):
        files[state] = count
        if state == AssetState.DOWNLOADED:
            bytes_on_disk = int(size)
    runs = select(store, "SELECT COUNT(*) OVER () AS runs, started_at, finished_at, exit_code, errors, "
                         "error_text FROM sync_runs ORDER BY started_at DESC, id DESC LIMIT 5")
    recent = [shape_row(r, ("started_at", "finished_at", "exit_code", "errors", "error_text")) for r in runs]
    for run in recent:  # sync.run_sync records an interrupted run with "interrupted" first
        run["interrupted"] = (run["error_text"] or "").startswith("interrupted")
    last_sync = None
    if recent:
        last_sync = {**recent[0], "runs": runs[0]["runs"]}
    result = {
        "tasks": sum(by_status.values()),
        "tasks_by_status": dict(sorted(by_status.items())),
        "clips": clips_total,
        "duration": round(duration_total, 3),
        "files": files,
        "bytes_on_disk": bytes_on_disk,
        "sources": {name: by_source[name] for name in sorted(by_source)},
        "last_sync": last_sync,
        "recent_syncs": recent,
    }
    if store.dialect == "postgresql":
        result["fleet"] = fleet(store)
    return result


def fleet(store: Reader) -> list[dict[str, Any]]:
    """The sync workers of a PostgreSQL catalog: alive (lease not over), their claims, their last run."""
    from .pgdb import FLEET_COLUMNS, FLEET_SQL

    return [shape_row(r, FLEET_COLUMNS) for r in select(store, FLEET_SQL, {})]


def facets(store: Reader) -> dict[str, list[str]]:
    """The values the web app's filters offer: sources, models and years present in the library."""
    return {
        "source": [r[0] for r in select_values(store, "SELECT DISTINCT source FROM clips ORDER BY 1")],
        "model": [r[0] for r in select_values(store, "SELECT DISTINCT model FROM clips WHERE model IS NOT NULL "
                                                     "AND model != '' ORDER BY 1 LIMIT 500")],
        "year": [r[0] for r in select_values(store, "SELECT DISTINCT substr(created_at, 1, 4) FROM clips "
                                                    "WHERE created_at IS NOT NULL ORDER BY 1 DESC")],
    }


def clips_per_month(store: Reader) -> list[tuple[str, int]]:
    """(YYYY-MM, clips created that month), oldest first; clips without a time are left out."""
    return [(str(m), int(n)) for m, n in select_values(
        store, "SELECT substr(created_at, 1, 7), COUNT(*) FROM clips WHERE created_at IS NOT NULL GROUP BY 1 "
               "ORDER BY 1")]
