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

import sqlite3
from datetime import datetime, timezone
from typing import Sequence

from .config import Config
from .errors import DatabaseError
from .fields import RUN_COUNTERS, AssetState
from .fs import sidecars, walk_library
from .lock import LibraryLock
from .readdb import SCHEMA_VERSION, ReadDB
from .records import TERMINAL, Status
from .report import SyncReport


def _stamp(value: datetime) -> str:
    return value.isoformat(timespec="microseconds")  # the text models.UTCDateTime stores


def _in(values: Sequence[str], prefix: str) -> tuple[str, dict[str, str]]:
    params = {f"{prefix}{i}": v for i, v in enumerate(values)}
    return ", ".join(f":{k}" for k in params), params


def _unfinished(db: ReadDB, sources: Sequence[str] | None, due_by: str | None) -> int:
    marks, params = _in([s.value for s in TERMINAL], "terminal")
    sql = f"SELECT COUNT(*) AS n FROM tasks WHERE status NOT IN ({marks})"
    if sources:
        names, more = _in(sources, "source")
        sql += f" AND source IN ({names})"
        params.update(more)
    if due_by is not None:
        sql += " AND (next_poll_at IS NULL OR next_poll_at <= :now)"
        params["now"] = due_by
    return int(db.rows(sql, params)[0]["n"])


_PENDING = (f"SELECT 1 FROM assets a JOIN clips c ON c.id = a.clip_pk JOIN tasks t ON t.id = c.task_pk "
            f"WHERE t.status = '{Status.SUCCEEDED.value}' AND a.state != '{AssetState.DOWNLOADED.value}' LIMIT 1")
_RECORDED = f"SELECT path FROM assets WHERE state = '{AssetState.DOWNLOADED.value}' AND path IS NOT NULL"


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
    on_disk, parts, links = walk_library(root)  # before the lock, which would create files in an absent library
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
                recorded = {path for (path,) in db.conn.execute(_RECORDED)}
        except (DatabaseError, sqlite3.DatabaseError):
            return None
        if not recorded <= on_disk:
            return None  # a recorded file is missing: fetch it again
        unrecorded = on_disk - recorded
        if unrecorded and not unrecorded <= sidecars(recorded):
            return None  # a file nobody recorded lies in the library: the normal path looks at it
        report = SyncReport(passes=1, still_unfinished=unfinished)
        _record(str(db_path), started, report)
    return report


def _record(path: str, started: datetime, report: SyncReport) -> None:
    """One `sync_runs` row, as the normal path writes it for a run that did nothing."""
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
    except sqlite3.Error as exc:
        from .readdb import db_message

        raise DatabaseError(db_message(f"sqlite:///{path}", exc)) from None
    finally:
        conn.close()
