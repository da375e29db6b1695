"""Opening the library database: for writing (create and migrate) or for reading only.

A read command must work on a read-only disk and must not invent a library where a path was
mistyped, so the read side never creates a directory, a database, a `-wal`/`-shm` file or a
schema: SQLite is opened with `mode=ro`, and with `immutable=1` when no `-wal` file exists (SQLite
would otherwise create one, even for a reader). Without a `-wal` file no process has the
database open, so there is no newer content to miss.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from .errors import DatabaseError


def sqlite_path(url: str) -> Path | None:
    """The file behind an SQLite URL; None for other databases and in-memory ones."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///")
    return None if path in ("", ":memory:") else Path(path)


def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout = 30000")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def _on_connect_readonly(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout = 30000")
    cursor.execute("PRAGMA query_only = ON")
    cursor.close()


def open_writable(url: str, *, create: bool) -> Engine:
    """An engine that may create the database file (and its folder) when `create` is set."""
    path = sqlite_path(url)
    if path is not None:
        if not create and not path.exists():
            raise DatabaseError(f"no library database at {path}; run `archiver sync` or `archiver import` first")
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _on_connect)
    return engine


def open_readonly(url: str) -> Engine:
    """An engine that cannot write, on a database that must already exist."""
    path = sqlite_path(url)
    if path is None:
        if url.startswith("sqlite"):
            raise DatabaseError("an in-memory database has no library to read")
        return create_engine(url)
    if not path.is_file():
        raise DatabaseError(f"no library at {path.parent} (no database {path}); "
                            "check --library/--db, or run `archiver sync` to start one")
    absolute = path.resolve()
    uri = f"file:{quote(str(absolute))}?mode=ro"
    wal, shm = Path(f"{absolute}-wal"), Path(f"{absolute}-shm")
    if not (wal.exists() and shm.exists()):
        uri += "&immutable=1"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)

    engine = create_engine(url, creator=connect)
    event.listen(engine, "connect", _on_connect_readonly)
    return engine


def check_readable(engine: Engine, url: str) -> None:
    """Refuse an empty file or a schema the read queries do not know, without changing it."""
    from .migrations import READABLE_FROM, SCHEMA_VERSION, refuse_newer

    if engine.dialect.name != "sqlite":
        return
    where = url.removeprefix("sqlite:///")
    try:
        with engine.connect() as conn:
            version = int(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0)
            tables = conn.exec_driver_sql("SELECT COUNT(*) FROM sqlite_master WHERE name = 'tasks'").scalar()
    except (SQLAlchemyError, sqlite3.DatabaseError) as exc:
        raise DatabaseError(db_message(url, exc)) from None
    if version == 0 and not tables:
        raise DatabaseError(f"no library at {where} (the database is empty); run `archiver sync` to start one")
    refuse_newer(version)
    if version < READABLE_FROM:
        raise DatabaseError(f"{where} has schema version {version}, older than this archiver ({SCHEMA_VERSION}); "
                            "run `archiver sync` once to upgrade it")


def is_damage(exc: BaseException) -> bool:
    """An SQLite error about the file itself (damaged, full, locked), not a bug in a statement.

    Constraint and programming errors are subclasses of these and stay exceptions to report.
    """
    orig = getattr(exc, "orig", None)
    return isinstance(exc, SQLAlchemyError) and type(orig) in (sqlite3.DatabaseError, sqlite3.OperationalError)


def db_message(url: str, exc: BaseException) -> str:
    detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    where = url.removeprefix("sqlite:///")
    if "not a database" in detail or "malformed" in detail or "vtable constructor failed" in detail:
        return (f"{where} is damaged ({detail}); move it aside and run `archiver rebuild` "
                "to recreate it from the tags of the archived files")
    if "locked" in detail:
        return f"{where} is locked by another process ({detail}); try again"
    if "readonly" in detail or "read-only" in detail:
        return f"{where} is read-only ({detail}); this command needs to write to it"
    return f"{where}: database error: {detail}"
