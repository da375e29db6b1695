"""Read-side queries over the library: what `tasks`, `ls`, `search` and `show` list.

Plain SQL, one query per listing, never one per row, so browsing 20,000 clips stays quick. The
read commands pass a readdb.ReadDB (the standard library's sqlite3: no ORM to import), or a
pgdb.PgReadDB on PostgreSQL; code that holds a writable Store (retag, the demo) passes that, and
the same SQL runs on its engine. Every reader says its `dialect`; the few statements that differ
(query terms, paging, full-text search) are written for it.
Query terms are compiled by query.py into bound parameters. `select` and `shape_row` are the one
way every read-side module (this one, overview.py) runs SQL and spells a row.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence, Union

from .errors import ArchiverError, UsageError
from .fs import DB_SUFFIXES, PART, SKIP_NAMES, database_file
from .fields import CLIP_TABLE, STORED_FIELDS, AssetKind, AssetState, plausible_duration
from .query import Compiled, compile_query, compile_sort, fts_query, prefix_bounds, register_functions
from .readdb import ReadDB
from .render import clean_line

if TYPE_CHECKING:
    from .pgdb import PgReadDB
    from .store import Store

Reader = Union[ReadDB, "PgReadDB", "Store"]

TASK_COLUMNS = ("source", "task_id", "status", "provider_status", "progress", "error", "clips",
                "created_at", "finished_at", "first_seen", "last_polled", "next_poll_at")

# What the clip is (its listed fields), its task's status, where its files come from, where they are.
CLIP_COLUMNS = ("source", "task_id", *(f.name for f in CLIP_TABLE if f.listed and f.asset is None), "status",
                *(f.name for f in CLIP_TABLE if f.listed and f.asset is not None), "audio_path", "image_path")

SEARCH_COLUMNS = CLIP_COLUMNS + ("snippet", "score")

ASSET_COLUMNS = ("kind", "url", "path", "size", "sha256", "state", "attempts", "last_error", "warning",
                 "tagged", "downloaded_at")

_TIME_FIELDS = {"created_at", "finished_at", "first_seen", "last_polled", "next_poll_at", "updated_at",
                "provider_updated_at", "downloaded_at", "started_at"}

# Bm25 weights for clips_fts(title, lyrics, tags): a hit in the title counts most.
FTS_WEIGHTS = (10.0, 1.0, 4.0)
SNIPPET_MARKS = ("«", "»")


class NotFound(ArchiverError):
    """No task or clip has this id (exit 1)."""


class Ambiguous(UsageError):
    """An id prefix that names more than one task or clip (exit 2)."""

    SHOWN = 5  # candidates named in the message, which is one line

    def __init__(self, ident: str, candidates: list[dict[str, Any]], more: bool = False) -> None:
        named = [f"{c['kind']} {clean_line(c['source'])} {clean_line(c['id'])}" for c in candidates[:self.SHOWN]]
        rest = len(candidates) - len(named)
        count = f"more than {len(candidates)}" if more else str(len(candidates))
        super().__init__(f"{ident!r} matches {count} tasks/clips ({'; '.join(named)}"
                         + (f"; and {'more than ' if more else ''}{rest} more" if rest else "")
                         + "); use a longer prefix (or task:ID / clip:ID)")
        self.candidates = candidates


def _iso_z(value: Any) -> str | None:
    """A stored time in its Z spelling; text that is not a time (written by another tool) as it is."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)  # the text models.UTCDateTime stores; also checks it
    except (TypeError, ValueError):
        return str(value)
    if len(value) == 32 and value[10] == "T" and value[19] == "." and value.endswith("+00:00"):
        # its usual spelling, whose isoformat() is known: a slice is much cheaper than the call
        return value[:19] + ("Z" if value[20:26] == "000000" else value[19:26] + "Z")
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return parsed.isoformat().replace("+00:00", "Z")


_PLANS: dict[tuple[str, ...], tuple[tuple[str, ...], bool]] = {}


def shape_row(mapping: Mapping[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    """`columns` of a result row, spelled as every reader shows them: times in Z form, sane durations."""
    key = tuple(columns)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = (tuple(n for n in key if n in _TIME_FIELDS), "duration" in key)
    times, has_duration = plan
    out = {name: mapping[name] for name in key}
    for name in times:
        out[name] = _iso_z(out[name])  # stored as ISO 8601 UTC text; normalise the spelling
    if has_duration:
        out["duration"] = plausible_duration(out["duration"])  # the database may hold any number
    return out


def select(db: Reader, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run one statement on a connection that knows the query helpers (archiver_fold)."""
    if isinstance(db, ReadDB):
        register_functions(db.conn)
        return db.rows(sql, params)
    if db.dialect == "postgresql":  # PostgreSQL's modules load for a PostgreSQL catalog only
        from .pgdb import PgReadDB, pyformat

        if isinstance(db, PgReadDB):
            return db.rows(sql, params)
        with db.connect() as conn:
            return [dict(r._mapping) for r in conn.exec_driver_sql(pyformat(sql), params or {})]
    with db.connect() as conn:
        register_functions(conn.connection.driver_connection)  # sqlite3 takes the `:name` style as written
        return [dict(r._mapping) for r in conn.exec_driver_sql(sql, params or {})]


def owned_by_library(db: Reader, library: Path, db_path: Path | None, target: Path) -> str | None:
    """What of the library's own `target` is (its database, an archived file), or None: a file a
    command's output (`export -o`) must never replace."""
    where = Path(os.path.realpath(target))
    if db_path is not None:
        database = Path(os.path.realpath(db_path))
        if where.parent == database.parent and where.name in {database.name + s for s in DB_SUFFIXES}:
            return "the library's database"
    root = Path(os.path.realpath(library))
    if where.is_relative_to(root):
        inside = where.relative_to(root)
        rel = inside.as_posix()
        if len(inside.parts) == 1 and (database_file(rel) or rel in SKIP_NAMES):
            return "a file archiver keeps in the library"
        if rel.endswith(PART):
            return "a temporary file of the library"
        if select(db, "SELECT 1 AS found FROM assets WHERE path = :path LIMIT 1", {"path": rel}):
            return "a file the library archived"
    return None


def select_values(db: Reader, sql: str) -> list[tuple[Any, ...]]:
    """`select` as tuples, for aggregates read by position."""
    return [tuple(r.values()) for r in select(db, sql)]


def _in(name: str, values: Sequence[Any], params: dict[str, Any]) -> str:
    keys = []
    for i, value in enumerate(values):
        params[f"{name}_{i}"] = value
        keys.append(f":{name}_{i}")
    return ", ".join(keys)


def list_tasks(store: Reader, *, sources: Sequence[str] | None = None,
               statuses: Sequence[str] | None = None) -> list[dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if sources:
        clauses.append(f"t.source IN ({_in('source', sources, params)})")
    if statuses:
        clauses.append(f"t.status IN ({_in('status', statuses, params)})")
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    sql = f"""
        SELECT t.source, t.task_id, t.status, t.provider_status, t.progress, t.error,
               (SELECT COUNT(*) FROM clips c WHERE c.task_pk = t.id) AS clips,
               t.created_at, t.finished_at, t.first_seen, t.last_polled, t.next_poll_at
        FROM tasks t{where}
        ORDER BY t.source, COALESCE(t.created_at, t.first_seen), t.task_id"""
    return [shape_row(r, TASK_COLUMNS) for r in select(store, sql, params)]


# c = clips, t = tasks, au/im = the clip's downloaded audio/image asset (at most one each:
# assets are unique per clip and kind). query.py's field columns refer to these aliases.
_DONE = AssetState.DOWNLOADED.value
_FILES = f"""
    LEFT JOIN assets au ON au.clip_pk = c.id AND au.kind = '{AssetKind.AUDIO.value}' AND au.state = '{_DONE}'
    LEFT JOIN assets im ON im.clip_pk = c.id AND im.kind = '{AssetKind.IMAGE.value}' AND im.state = '{_DONE}'"""

CLIP_FROM = f"""
    FROM clips c
    JOIN tasks t ON t.id = c.task_pk{_FILES}"""

_NOT_CLIP_COLUMNS = {"task_id": "t.task_id", "status": "t.status", "audio_path": "au.path", "image_path": "im.path"}
CLIP_SELECT = "\n    SELECT c.id AS clip_pk, " + ", ".join(
    f"{_NOT_CLIP_COLUMNS.get(name, 'c.' + name)} AS {name}" for name in CLIP_COLUMNS)


def _page(sql: str, params: dict[str, Any], limit: int | None, offset: int, dialect: str = "sqlite") -> str:
    if limit is not None:
        sql += " LIMIT :limit"
        params["limit"] = limit
    if offset:
        no_limit = " LIMIT ALL" if dialect == "postgresql" else " LIMIT -1"
        sql += (no_limit if limit is None else "") + " OFFSET :offset"
        params["offset"] = offset
    return sql


def list_clips(store: Reader, terms: Sequence[str] = (), *, sources: Sequence[str] | None = None,
               sort: Sequence[str] = (), limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
    """Clips matching every query term, in one SELECT (see query.py for the grammar)."""
    dialect = store.dialect
    compiled = compile_query(terms, sources=sources, dialect=dialect)
    params = dict(compiled.params)
    order = compile_sort(sort, dialect)
    if offset and limit is not None:
        # a page deep in the list: sort and skip ids only, then read the page's rows (5x faster at 20,000)
        ids = _page(f"SELECT c.id {CLIP_FROM}{compiled.clause()} ORDER BY {order}", params, limit, offset, dialect)
        sql = f"{CLIP_SELECT}{CLIP_FROM} WHERE c.id IN ({ids}) ORDER BY {order}"
    else:
        sql = _page(f"{CLIP_SELECT}{CLIP_FROM}{compiled.clause()} ORDER BY {order}", params, limit, offset, dialect)
    return [shape_row(r, CLIP_COLUMNS) for r in select(store, sql, params)]


# The same listing as JSON objects made by SQLite itself: encoding 20,000 rows is most of what
# `ls --format json` costs in Python. Each value matches what `shape_row` gives: created_at in its
# usual stored spelling sliced to the Z form (any other spelling goes through `_iso_z`), the
# duration through `plausible_duration` (the one value per row Python formats).
_JSON_ISO_Z = ("CASE WHEN {c} IS NULL OR {c} = '' THEN NULL "
               "WHEN length({c}) = 32 AND substr({c}, 11, 1) = 'T' AND substr({c}, 20, 1) = '.' "
               "AND substr({c}, 27) = '+00:00' THEN substr({c}, 1, 19) || "
               "CASE WHEN substr({c}, 21, 6) = '000000' THEN 'Z' ELSE substr({c}, 20, 7) || 'Z' END "
               "ELSE archiver_iso_z({c}) END")
_JSON_DURATION = "json(archiver_duration({c}))"  # Python's float spelling: SQLite's keeps 15 digits


def _duration_json(value: Any) -> str | None:
    seconds = plausible_duration(value)
    return None if seconds is None else repr(seconds)


def _json_value(name: str) -> str:
    column = _NOT_CLIP_COLUMNS.get(name, "c." + name)
    if name in _TIME_FIELDS:
        return _JSON_ISO_Z.format(c=column)
    if name == "duration":
        return _JSON_DURATION.format(c=column)
    return column


_CLIP_JSON = "\n    SELECT json_object(" + ", ".join(f"'{n}', {_json_value(n)}" for n in CLIP_COLUMNS) + ")"


def clips_json(store: Reader, terms: Sequence[str] = (), *, sources: Sequence[str] | None = None,
               sort: Sequence[str] = (), limit: int | None = None) -> list[str]:
    """`list_clips` as one compact JSON text per clip, in the same order with the same values."""
    if isinstance(store, ReadDB):
        compiled = compile_query(terms, sources=sources)
        sql = f"{_CLIP_JSON}{CLIP_FROM}{compiled.clause()} ORDER BY {compile_sort(sort)}"
        params = dict(compiled.params)
        if limit is not None:
            sql += " LIMIT :limit"
            params["limit"] = limit
        register_functions(store.conn)
        store.conn.create_function("archiver_iso_z", 1, _iso_z, deterministic=True)
        store.conn.create_function("archiver_duration", 1, _duration_json, deterministic=True)
        try:
            return [text for (text,) in store.conn.execute(sql, params)]
        except sqlite3.Error:
            pass  # a value SQLite's JSON cannot hold (a BLOB someone stored): encode it in Python
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
    return [encode(row) for row in list_clips(store, terms, sources=sources, sort=sort, limit=limit)]


def _fts_params(text_: str) -> dict[str, Any]:
    """The parameters of an FTS5 search: the MATCH expression and the snippet's marks."""
    return {"match": fts_query(text_), "open": SNIPPET_MARKS[0], "close": SNIPPET_MARKS[1]}


def _pg_search(text_: str) -> tuple[str, str, dict[str, Any]]:
    """(snippet and score columns, FROM ... WHERE, parameters) of a search on PostgreSQL (pgsearch.py)."""
    from .pgsearch import search_parts

    return search_parts(_FILES, text_, FTS_WEIGHTS, SNIPPET_MARKS)


def _joins_for(where: str) -> str:
    """The joins a condition on clips needs: every clip has one task and at most one file of each
    kind, so a condition that names neither keeps the query on `clips` alone."""
    return ((" JOIN tasks t ON t.id = c.task_pk" if re.search(r"\bt\.", where) else "")
            + (_FILES if re.search(r"\b(au|im)\.", where) else ""))


def _fts_matches(compiled: Compiled) -> str:
    """FROM ... WHERE of the FTS5 matches a condition keeps, joining only what it names: the index
    follows `clips` (triggers), so without a condition the matches are the index's rows alone."""
    joins = f" JOIN clips c ON c.id = clips_fts.rowid{_joins_for(compiled.where)}" if compiled.where else ""
    return f"FROM clips_fts{joins} WHERE clips_fts MATCH :match{compiled.clause(' AND ')}"


def count_clips(store: Reader, terms: Sequence[str] = (), *, text_: str | None = None) -> int:
    """How many clips `list_clips` (or `search` with `text_`) would list without a limit."""
    compiled = compile_query(terms, dialect=store.dialect)
    params = dict(compiled.params)
    if text_ is None:
        sql = f"SELECT COUNT(*) AS n FROM clips c{_joins_for(compiled.where)}{compiled.clause()}"
    elif store.dialect == "postgresql":
        _columns, source, found = _pg_search(text_)
        params.update(found)
        sql = f"SELECT COUNT(*) AS n {source}{compiled.clause(' AND ')}"
    else:
        params.update(_fts_params(text_))
        sql = f"SELECT COUNT(*) AS n {_fts_matches(compiled)}"
    return int(select(store, sql, params)[0]["n"])


def _fts_best(compiled: Compiled, params: dict[str, Any], limit: int | None, offset: int) -> str:
    """FTS5 search in two steps: rank every match by bm25 alone, then read the page's rows and
    snippets. SQLite computes a result column for every row it sorts, so one SELECT built a snippet
    (and joined files) for each of thousands of matches to show 50 (3-4x slower at 20,000 clips);
    without a filter the ranking does not even read `clips`. bm25 is "lower is better"."""
    weights = ", ".join(str(w) for w in FTS_WEIGHTS)
    best = _page(f"SELECT clips_fts.rowid AS id, bm25(clips_fts, {weights}) AS score {_fts_matches(compiled)} "
                 "ORDER BY score, id", params, limit, offset)
    snippet = ("(SELECT snippet(clips_fts, -1, :open, :close, '…', 12) FROM clips_fts "
               "WHERE clips_fts MATCH :match AND clips_fts.rowid = c.id)")
    return (f"{CLIP_SELECT},\n           {snippet} AS snippet, best.score AS score\n"
            f"    FROM ({best}) best\n    JOIN clips c ON c.id = best.id\n    JOIN tasks t ON t.id = c.task_pk"
            f"{_FILES}\n    ORDER BY best.score, c.id")


def search(store: Reader, text_: str, *, limit: int | None = None, terms: Sequence[str] = (),
           offset: int = 0) -> list[dict[str, Any]]:
    """Full-text search over title, lyrics and tags, best match first, with a snippet.

    `terms` (the `ls` grammar) narrow the matches further, as the web app's filters do.
    """
    compiled = compile_query(terms, dialect=store.dialect)
    if store.dialect == "sqlite":
        params = {**_fts_params(text_), **compiled.params}
        sql = _fts_best(compiled, params, limit, offset)
    else:
        columns, source, found = _pg_search(text_)
        params = {**found, **compiled.params}
        sql = f"{CLIP_SELECT}{columns}{source}{compiled.clause(' AND ')}\n        ORDER BY score DESC, c.id"
        sql = _page(sql, params, limit, offset, store.dialect)
    rows = [shape_row(r, SEARCH_COLUMNS) for r in select(store, sql, params)]
    sign = 1 if store.dialect == "postgresql" else -1  # show higher = better on both
    for row in rows:
        row["score"] = round(sign * float(row["score"]), 4)
    return rows


# --- show ----------------------------------------------------------------------------------------


AMBIGUOUS_COUNTED = 50  # an ambiguous prefix is counted up to this many candidates


def resolve(store: Reader, ident: str) -> tuple[str, int]:
    """("task" | "clip", primary key) for an exact id or a unique prefix of task_id/clip_id.

    `task:ID` or `clip:ID` restricts the lookup to one kind. An exact match beats prefixes.
    """
    kinds: tuple[str, ...] = ("task", "clip")
    kind_hint, sep, rest = ident.partition(":")
    if sep and kind_hint in kinds and rest:
        kinds, ident = (kind_hint,), rest
    ident = ident.strip()
    if not ident:
        raise UsageError("give a task or clip id (a unique prefix is enough)")
    params: dict[str, Any] = {"pattern": ident.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"}
    parts = []
    if "task" in kinds:
        parts.append("SELECT 'task' AS kind, id AS pk, source, task_id AS id FROM tasks "
                     "WHERE task_id LIKE :pattern ESCAPE '\\'")
    if "clip" in kinds:
        within = ""
        if store.dialect == "sqlite":  # bounds the clip_id index can seek to; LIKE still decides
            params["low"], params["high"] = prefix_bounds(ident)
            within = "clip_id >= :low AND " + ("clip_id < :high AND " if params["high"] else "")
        parts.append("SELECT 'clip' AS kind, id AS pk, source, clip_id AS id FROM clips "
                     f"WHERE {within}clip_id LIKE :pattern ESCAPE '\\'")
    union = " UNION ALL ".join(parts)
    params["exact"] = ident
    exact = f"SELECT * FROM ({union}) AS found WHERE id = :exact ORDER BY kind DESC, source"
    chosen = select(store, exact, params)
    if not chosen:
        chosen = select(store, f"{union} ORDER BY kind DESC, source, id LIMIT {AMBIGUOUS_COUNTED + 1}", params)
    if not chosen:
        raise NotFound(f"no task or clip id starts with {ident!r}")
    if len(chosen) > 1:
        raise Ambiguous(ident, chosen[:AMBIGUOUS_COUNTED], more=len(chosen) > AMBIGUOUS_COUNTED)
    return chosen[0]["kind"], chosen[0]["pk"]


_KIND_ORDER = "CASE kind " + " ".join(f"WHEN '{k.value}' THEN {i}" for i, k in enumerate(AssetKind)) + " END"


def _assets_by_clip(store: Reader, clip_pks: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    if not clip_pks:
        return {}
    params: dict[str, Any] = {}
    sql = (f"SELECT clip_pk, {', '.join(ASSET_COLUMNS)} FROM assets WHERE clip_pk IN "
           f"({_in('pk', clip_pks, params)}) ORDER BY clip_pk, {_KIND_ORDER}")
    out: dict[int, list[dict[str, Any]]] = {}
    for r in select(store, sql, params):
        asset = shape_row(r, ASSET_COLUMNS)
        asset["tagged"] = bool(asset["tagged"])
        out.setdefault(r["clip_pk"], []).append(asset)
    return out


def _raw(value: str | None) -> Any:
    try:
        return json.loads(value) if value else None
    except ValueError:
        return value


_TASK_DETAIL = ("source", "task_id", "status", "provider_status", "progress", "error", "created_at",
                "finished_at", "provider_updated_at", "first_seen", "last_polled", "updated_at",
                "next_poll_at", "polls", "idle_polls", "poll_errors")
_CLIP_DETAIL = ("source", "clip_id", *STORED_FIELDS, "first_seen", "updated_at")


def _clip_details(store: Reader, where: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    sql = (f"SELECT c.id AS pk, c.task_pk, t.task_id, t.status AS task_status, c.raw_json, "
           f"{', '.join('c.' + n for n in _CLIP_DETAIL)} FROM clips c JOIN tasks t ON t.id = c.task_pk "
           f"WHERE {where} ORDER BY c.created_at, c.clip_id")
    rows = select(store, sql, params)
    assets = _assets_by_clip(store, [r["pk"] for r in rows])
    clips = []
    for r in rows:
        clip = {"kind": "clip", **shape_row(r, ("source", "task_id", "task_status") + _CLIP_DETAIL[1:])}
        clip["files"] = assets.get(r["pk"], [])
        audio = [a for a in clip["files"] if a["kind"] == AssetKind.AUDIO and a["state"] == AssetState.DOWNLOADED]
        clip["tagged"] = audio[0]["tagged"] if audio else None  # None: nothing on disk to tag yet
        clip["raw"] = _raw(r["raw_json"])
        clip["task_pk"] = r["task_pk"]  # popped by detail(); not part of the output
        clips.append(clip)
    return clips


def detail(store: Reader, ident: str) -> dict[str, Any]:
    """Every stored field of one task (with its clips) or one clip (with its task), and files."""
    kind, pk = resolve(store, ident)
    return _detail(store, kind, pk)


def exact_detail(store: Reader, kind: str, source: str, ident: str) -> dict[str, Any] | None:
    """`detail` of the task or clip named exactly by source and id (links carry both); None if none."""
    table, column = ("tasks", "task_id") if kind == "task" else ("clips", "clip_id")
    found = select(store, f"SELECT id FROM {table} WHERE source = :source AND {column} = :ident",
                   {"source": source, "ident": ident})
    try:
        return _detail(store, kind, found[0]["id"]) if found else None
    except NotFound:  # a clip whose task row another tool deleted
        return None


def _detail(store: Reader, kind: str, pk: int) -> dict[str, Any]:
    if kind == "clip":
        found = _clip_details(store, "c.id = :pk", {"pk": pk})
        if not found:  # its task row is gone: written by another tool, archiver deletes neither alone
            raise NotFound("that clip's task is missing from the database")
        clip = found[0]
        clip["task"] = _task_row(store, clip.pop("task_pk"))
        return clip
    task = {"kind": "task", **_task_row(store, pk)}
    task["clips"] = _clip_details(store, "c.task_pk = :pk", {"pk": pk})
    for clip in task["clips"]:
        clip.pop("task_pk")
    return task


def _task_row(store: Reader, pk: int) -> dict[str, Any]:
    sql = f"SELECT {', '.join(_TASK_DETAIL)}, raw_json FROM tasks WHERE id = :pk"
    row = select(store, sql, {"pk": pk})[0]
    out = shape_row(row, _TASK_DETAIL)
    out["raw"] = _raw(row["raw_json"])
    return out


# --- playlists and files -------------------------------------------------------------------------


def m3u(rows: Iterable[dict[str, Any]], library: Path, playlist_dir: Path | None) -> str:
    """Extended M3U of the rows whose audio is on disk.

    Paths are relative to `playlist_dir` (where the playlist will live), so the library and
    playlist can move together; absolute when there is no playlist file (stdout).
    """
    lines = ["#EXTM3U"]
    root = Path(os.path.abspath(library))
    base = os.path.abspath(playlist_dir) if playlist_dir is not None else None
    for row in rows:
        if not row.get("audio_path"):
            continue
        target = str(root / row["audio_path"])
        seconds = round(row["duration"]) if row.get("duration") is not None else -1
        artist = row.get("model") or row.get("source") or ""
        title = row.get("title") or row.get("clip_id") or ""
        label = clean_line(f"{artist} - {title}" if artist else title)
        lines.append(f"#EXTINF:{seconds},{' '.join(label.split())}")
        entry = clean_line(os.path.relpath(target, base) if base is not None else target)
        lines.append("./" + entry if entry.startswith("#") else entry)  # a line starting "#" is a comment
    return "\n".join(lines) + "\n"


# --- what the web app adds -----------------------------------------------------------------------


def archived_path(store: Reader, source: str, clip_id: str, kind: str) -> str | None:
    """The library-relative path of a clip's downloaded file of `kind`; None when there is none."""
    rows = select(store, "SELECT a.path FROM assets a JOIN clips c ON c.id = a.clip_pk WHERE c.source = :source "
                         "AND c.clip_id = :clip AND a.kind = :kind AND a.state = :done AND a.path IS NOT NULL",
                  {"source": source, "clip": clip_id, "kind": kind, "done": AssetState.DOWNLOADED.value})
    return rows[0]["path"] if rows else None
