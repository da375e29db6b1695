"""Opening the library database: for writing (create and migrate) or for reading only.

A read command must work on a read-only disk and must not invent a library where a path was
mistyped, so the read side never creates a directory, a database, a `-wal`/`-shm` file or a
schema: SQLite is opened with `mode=ro`, and with `immutable=1` when no `-wal` file exists (SQLite
would otherwise create one, even for a reader). Without a `-wal` file no process has the
database open, so there is no newer content to miss. A PostgreSQL catalog (psycopg) is opened
as it is; its read-only engines run every transaction read-only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from . import pgdb, readdb
from .errors import DatabaseError
from .readdb import existing_file, readonly_uri, schema_problem, sqlite_path

__all__ = ["as_stored", "catalog_errors", "check_readable", "db_message", "is_damage", "open_readonly", "open_writable",
           "sqlite_path"]


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


def db_message(url: str, exc: BaseException) -> str:
    """One line about a database failure; never the password of a PostgreSQL URL."""
    return pgdb.message(url, exc) if pgdb.is_postgres(url) else readdb.db_message(url, exc)


def as_stored(value: Any) -> Any:
    """`value` as a PostgreSQL catalog stores it: NUL in text becomes U+FFFD (also in a list, an
    array parameter); anything else unchanged."""
    if isinstance(value, list):  # an array parameter (ids given to one statement)
        return [as_stored(v) for v in value]
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


def _scrub_nul(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
               executemany: bool) -> tuple[str, Any]:
    """PostgreSQL text cannot hold NUL, which a provider may send in any field (SQLite keeps it):
    it becomes U+FFFD, the replacement character, instead of failing the whole batch."""
    def clean(row: Any) -> Any:
        if isinstance(row, dict):
            return {k: as_stored(v) for k, v in row.items()}
        if isinstance(row, (list, tuple)):
            return type(row)(as_stored(v) for v in row)
        return row

    if executemany and isinstance(parameters, (list, tuple)):
        return statement, [clean(row) for row in parameters]
    return statement, clean(parameters)


def open_writable(url: str, *, create: bool) -> Engine:
    """An engine that may create the database file (and its folder) when `create` is set."""
    if pgdb.is_postgres(url):
        engine = create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 30})
        event.listen(engine, "before_cursor_execute", _scrub_nul, retval=True)
        return engine
    path = sqlite_path(url)
    if path is not None:
        if path.is_dir() or (not create and not path.is_file()):
            raise readdb.missing_database(path)
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _on_connect)
    return engine


def open_readonly(url: str) -> Engine:
    """An engine that cannot write, on a database that must already exist."""
    if pgdb.is_postgres(url):
        return create_engine(url, connect_args={"connect_timeout": 30,
                                                "options": "-c default_transaction_read_only=on"})
    if sqlite_path(url) is None and not url.startswith("sqlite"):
        return create_engine(url)
    uri = readonly_uri(existing_file(url))

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)

    engine = create_engine(url, creator=connect)
    event.listen(engine, "connect", _on_connect_readonly)
    return engine


def check_readable(engine: Engine, url: str) -> None:
    """Refuse an empty file or a schema the read queries do not know, without changing it."""
    if engine.dialect.name == "postgresql":
        try:
            with engine.connect() as conn:
                exists = conn.exec_driver_sql(f"SELECT to_regclass('{pgdb.VERSION_TABLE}') IS NOT NULL").scalar()
                row = conn.exec_driver_sql(pgdb.version_sql()).one() if exists else (0, False)
        except SQLAlchemyError as exc:
            raise DatabaseError(db_message(url, exc)) from None
        schema_problem(pgdb.redact_url(url), int(row[0] or 0), bool(row[1]))
        return
    if engine.dialect.name != "sqlite":
        return
    try:
        with engine.connect() as conn:
            version = int(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0)
            tables = conn.exec_driver_sql("SELECT COUNT(*) FROM sqlite_master WHERE name = 'tasks'").scalar()
    except (SQLAlchemyError, sqlite3.DatabaseError) as exc:
        raise DatabaseError(db_message(url, exc)) from None
    schema_problem(url, version, bool(tables))


def is_damage(exc: BaseException) -> bool:
    """An error about the database itself (SQLite: damaged, full, locked; PostgreSQL: the server
    gone or refusing), not a bug in a statement."""
    orig = getattr(exc, "orig", None)
    if not isinstance(exc, SQLAlchemyError) or orig is None:
        return False
    return readdb.is_damage(orig) or pgdb.is_outage(orig)


@contextmanager
def catalog_errors(url: str) -> Iterator[None]:
    """Damage to the catalog, or its server gone, met by any statement inside becomes a
    DatabaseError naming the catalog (never its password); any other error passes unchanged."""
    try:
        yield
    except SQLAlchemyError as exc:
        if is_damage(exc):
            raise DatabaseError(db_message(url, exc)) from None
        raise
