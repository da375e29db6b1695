"""The idle cron run: `archiver sync` with nothing due and nothing pending ends here, before the
network and ORM stacks are imported (they cost most of a second; this check costs a few reads).

A run is idle only when a full sync would do nothing at all: no task due (with `--now` or
`--until-done`: none unfinished), no file of a succeeded clip waiting, every recorded file on
disk, and no leftover `.part` file, symbolic link or file nobody recorded in the library. Anything
else, or any doubt (no library yet, a schema to migrate, an unreadable database), takes the
normal path, which also makes the absent-library check and reports errors. The idle run still
takes the library lock (a second sync exits 75 as before) and records itself in `sync_runs`, so
`stats` shows when the last sync ran.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timezone
from typing import Iterable, Sequence

from .config import Config
from .errors import DatabaseError
from .fields import RUN_COUNTERS, TERMINAL, AssetState, Status
from . import dirstamp
from .fs import sidecars, walk_library
from .lock import LibraryLock
from .readdb import PATH_TRIGGERS, SCHEMA_VERSION, ReadDB
from .report import SyncReport


def _stamp(value: datetime) -> str:
    return value.isoformat(timespec="microseconds")  # the text models.UTCDateTime stores


def _in(values: Sequence[str], prefix: str) -> tuple[str, dict[str, str]]:
    params = {f"{prefix}{i}": v for i, v in enumerate(values)}
    return ", ".join(f":{k}" for k in params), params


def _not_in(column: str, values: Iterable[str]) -> str:
    """`column NOT IN (values)` spelled as the ranges between them, which SQLite answers from an
    index on `column` where NOT IN reads every entry. The same rows whatever the column holds
    (text, numbers, blobs, NULL) when it has text affinity and the values are words, as the
    status columns and their enum values are (numbers would sort differently in SQLite)."""
    ordered = sorted(values)
    assert ordered and all(value.isalpha() for value in ordered), ordered
    ranges = [f"{column} < '{ordered[0]}'",
              *(f"({column} > '{low}' AND {column} < '{high}')" for low, high in zip(ordered, ordered[1:])),
              f"{column} > '{ordered[-1]}'"]
    return f"({' OR '.join(ranges)})"


def _unfinished(db: ReadDB, sources: Sequence[str] | None, due_by: str | None) -> int:
    sql = f"SELECT COUNT(*) AS n FROM tasks WHERE {_not_in('status', [s.value for s in TERMINAL])}"
    params: dict[str, str] = {}
    if sources:
        names, more = _in(sources, "source")
        sql += f" AND source IN ({names})"
        params.update(more)
    if due_by is not None:
        sql += " AND (next_poll_at IS NULL OR next_poll_at <= :now)"
        params["now"] = due_by
    return int(db.rows(sql, params)[0]["n"])


_NOT_DOWNLOADED = _not_in("a.state", [AssetState.DOWNLOADED.value])
# CROSS JOIN keeps assets outermost: the state index finds the few undownloaded ones, where a join
# from succeeded tasks would visit every clip of the library.
_PENDING = (f"SELECT 1 FROM assets a CROSS JOIN clips c CROSS JOIN tasks t "
            f"WHERE c.id = a.clip_pk AND t.id = c.task_pk AND t.status = '{Status.SUCCEEDED.value}' "
            f"AND {_NOT_DOWNLOADED} LIMIT 1")
_RECORDED = f"SELECT path FROM assets WHERE state = '{AssetState.DOWNLOADED.value}' AND path IS NOT NULL"
# Every path as one string, read from the covering path index: no per-row tuple, no table page.
_ALL_PATHS = "SELECT group_concat(path, char(0)) FROM assets WHERE path IS NOT NULL"
_PATH_NOT_DOWNLOADED = f"SELECT 1 FROM assets a WHERE {_NOT_DOWNLOADED} AND a.path IS NOT NULL LIMIT 1"
# Changes whenever a recorded path does (migrations' version 7); none while a trigger is missing
# (dropped, or lost with a rebuilt table), as the count would then stand still.
_PATH_TOKEN = (f"SELECT generation || ':' || changes FROM path_changes WHERE id = 1 AND (SELECT count(*) "
               f"FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'assets' AND name IN "
               f"({', '.join(repr(name) for name in PATH_TRIGGERS)})) = {len(PATH_TRIGGERS)}")
# A new generation for the token a stamp is about to carry, unless the paths changed meanwhile.
_REDRAW = "UPDATE path_changes SET generation = ? WHERE id = 1 AND generation || ':' || changes = ?"


def _exactly_recorded(conn: sqlite3.Connection, on_disk: set[str] | None, stamp: dirstamp.Stamp | None
                      ) -> tuple[bool, str]:
    """Whether the files on disk are exactly the recorded downloaded paths (the common idle case),
    and the token of those paths ("" when the database has none). False means only "look closer"
    (sidecars, missing or extra files). With `on_disk` None the stamp's folders were found
    unchanged, and the token alone decides. The token is read before the paths: a change between
    the two leaves an older token in the stamp, and the next run walks again."""
    if conn.execute(_PATH_NOT_DOWNLOADED).fetchone() is not None:
        return False, ""
    found = conn.execute(_PATH_TOKEN).fetchone()
    token = found[0] if found and isinstance(found[0], str) else ""
    if on_disk is None:
        return bool(token) and stamp is not None and token == stamp.paths, token
    joined = conn.execute(_ALL_PATHS).fetchone()[0]
    return joined is not None and set(joined.split("\0")) == on_disk, token


def _records_files(url: str) -> bool:
    try:
        with ReadDB(url) as db:
            return bool(db.rows(_RECORDED + " LIMIT 1"))
    except DatabaseError:
        return True  # unknown: the normal path decides


def idle_run(config: Config, *, sources: Sequence[str] | None, ignore_schedule: bool, until_done: bool,
             wait: float | None) -> SyncReport | None:
    """The report of a sync that found nothing to do (and recorded itself); None to sync normally."""
    started = datetime.now(timezone.utc)
    root, db_path = config.library, config.db_path
    if config.path_template or db_path is None or not db_path.is_file() or not root.is_dir():
        return None  # a template to validate, another database, a first run or an absent library
    stamp = dirstamp.load(root)
    on_disk: set[str] | None = None
    seen = dirstamp.Recorder()
    if stamp is None or not dirstamp.unchanged(root, stamp):
        stamp = None
        on_disk, parts, links = walk_library(root, seen)  # before the lock, which would create files in an absent library
        if parts or links or (not on_disk and _records_files(config.db_url)):
            return None
    with LibraryLock(root, wait):
        try:
            with ReadDB(config.db_url) as db:
                if db.version != SCHEMA_VERSION:
                    return None
                unfinished = _unfinished(db, sources, None)
                due = unfinished if (ignore_schedule or until_done) else _unfinished(db, sources, _stamp(started))
                if due or db.rows(_PENDING):
                    return None
                if on_disk is None and (stamp is None or not dirstamp.unchanged(root, stamp)):  # changed under a run
                    stamp = None
                exact, token = _exactly_recorded(db.conn, on_disk, stamp)
                if on_disk is None and not exact:  # the records (or, meanwhile, the folders) changed
                    seen = dirstamp.Recorder()
                    on_disk, parts, links = walk_library(root, seen)
                    if parts or links:
                        return None
                    exact, token = _exactly_recorded(db.conn, on_disk, None)
                recorded = set() if exact else {path for (path,) in db.conn.execute(_RECORDED)}
        except (DatabaseError, sqlite3.DatabaseError):
            return None
        if on_disk is not None and not exact and not _accounted_for(recorded, on_disk):
            return None
        report = SyncReport(passes=1, still_unfinished=unfinished)
        stamping = on_disk is not None and seen.trusted  # dirstamp.save refuses an untrusted walk
        token = _record(str(db_path), started, report, token if stamping else "")
        if token:
            dirstamp.save(root, seen, token)
    return report


def _accounted_for(recorded: set[str], on_disk: set[str]) -> bool:
    if not recorded <= on_disk:
        return False  # a recorded file is missing: fetch it again
    unrecorded = on_disk - recorded
    return not unrecorded or unrecorded <= sidecars(recorded)  # else the normal path looks at the others


def _record(path: str, started: datetime, report: SyncReport, token: str) -> str:
    """One `sync_runs` row, as the normal path writes it for a run that did nothing. With the
    `token` of a walk about to be stamped, the same transaction draws the database a new
    generation, so that a copy of it from before this stamp (a restored backup) never matches it:
    returns the new token, or "" when the paths changed since the walk (then no stamp)."""
    columns = ("started_at", "finished_at", "exit_code", "errors", *RUN_COUNTERS)
    values = (_stamp(started), _stamp(datetime.now(timezone.utc)), report.exit_code, len(report.errors),
              *report.counts().values())
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        with conn:
            conn.execute(f"INSERT INTO sync_runs ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
                         values)
            if token:
                generation = os.urandom(16).hex()
                redrawn = conn.execute(_REDRAW, (generation, token)).rowcount == 1
                token = f"{generation}:{token.rpartition(':')[2]}" if redrawn else ""
    except sqlite3.Error as exc:
        from .readdb import db_message

        raise DatabaseError(db_message(f"sqlite:///{path}", exc)) from None
    finally:
        conn.close()
    return token
