"""Reading the library database through the standard library's sqlite3, without the ORM.

The read commands (`ls`, `search`, `show`, `stats`, `tasks`, `export`) and the idle-sync check
start in a fraction of the time SQLAlchemy and SQLModel take to import, and they must never
change what they read: the database is opened with `mode=ro`, and with `immutable=1` when no
`-wal`/`-shm` pair exists (SQLite would otherwise create them, even for a reader; without them no
process has the database open, so there is no newer content to miss). No directory, database or
schema is ever created here. database.py opens the same way for SQLAlchemy engines.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import quote

from .errors import DatabaseError, TooSlow

SCHEMA_VERSION = 7  # migrations.STEPS has this many steps (migrations.py checks it on import)
READABLE_FROM = 2  # the oldest version reads understand: before version 5, clips without a time list none
# Version 7's triggers that count path changes (migrations.py); the idle check trusts the count
# only while all three exist.
PATH_TRIGGERS = ("assets_path_insert", "assets_path_update", "assets_path_delete")


def sqlite_path(url: str) -> Path | None:
    """The file behind an SQLite URL; None for other databases and in-memory ones."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///")
    return None if path in ("", ":memory:") else Path(path)


def readonly_uri(path: Path) -> str:
    """The `file:` URI that opens `path` without writing anything beside it (see the module note)."""
    absolute = path.resolve()
    uri = f"file:{quote(bytes(absolute))}?mode=ro"  # bytes: a folder name need not be UTF-8
    if not (Path(f"{absolute}-wal").exists() and Path(f"{absolute}-shm").exists()):
        uri += "&immutable=1"
    return uri


def existing_file(url: str) -> Path:
    """The database file of `url`; DatabaseError when there is none to read."""
    path = sqlite_path(url)
    if path is None:
        raise DatabaseError("an in-memory database has no library to read")
    if not path.is_file():
        raise missing_database(path)
    return path


def missing_database(path: Path) -> DatabaseError:
    """A database file that is not there (or is a folder): what every command says of it."""
    what = "a folder, not a database file" if path.is_dir() else "no such database file"
    return DatabaseError(f"no library at {path} ({what}); check --library/--db, or run `archiver sync` to start one")


def refuse_newer(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise DatabaseError(
            f"the library database has schema version {version}, newer than this archiver "
            f"understands ({SCHEMA_VERSION}); upgrade archiver"
        )


def is_damage(exc: BaseException) -> bool:
    """An SQLite error about the file itself (damaged, full, locked), not a bug in a statement.

    Constraint and programming errors are subclasses of these and stay exceptions to report.
    """
    return type(exc) in (sqlite3.DatabaseError, sqlite3.OperationalError)


def undecodable(exc: BaseException) -> bool:
    """Text that is not UTF-8 in a row (stored by some other tool): sqlite3 refuses the whole
    result. Reads then decode leniently, so one such value does not hide the library."""
    return isinstance(exc, sqlite3.OperationalError) and str(exc).startswith("Could not decode to UTF-8")


def lenient_text(value: bytes) -> str:
    """Only after `undecodable`: a text_factory costs a Python call per value of every row."""
    return value.decode("utf-8", "replace")


def db_message(url: str, exc: BaseException) -> str:
    detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    where = url.removeprefix("sqlite:///")
    if "not a database" in detail or "malformed" in detail or "vtable constructor failed" in detail:
        return (f"{where} is damaged ({detail}); run `archiver rebuild` to recreate it from the tags "
                "of the archived files (it keeps the damaged file beside it)")
    if "locked" in detail:
        return f"{where} is locked by another process ({detail}); try again"
    if "readonly" in detail or "read-only" in detail:
        return f"{where} is read-only ({detail}); this command needs to write to it"
    return f"{where}: database error: {detail}"


def schema_problem(url: str, version: int, has_tasks: bool) -> None:
    """Refuse an empty file or a schema the read queries do not know."""
    where = url.removeprefix("sqlite:///")
    if version == 0 and not has_tasks:
        raise DatabaseError(f"no library at {where} (the database is empty); run `archiver sync` to start one")
    refuse_newer(version)
    if version < READABLE_FROM:
        raise DatabaseError(f"{where} has schema version {version}, older than this archiver ({SCHEMA_VERSION}); "
                            "run `archiver sync` once to upgrade it")


class ReadDB:
    """A read-only connection to one library database; `rows` runs one statement."""

    dialect = "sqlite"

    def __init__(self, url: str, *, time_limit: float | None = None) -> None:
        """`time_limit`: seconds after which a statement is stopped (the web app's requests: one
        a client gave up on must not hold a worker for minutes)."""
        self.url = url
        self.time_limit = time_limit
        uri = readonly_uri(existing_file(url))
        try:
            self.conn = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
        except sqlite3.Error as exc:
            raise DatabaseError(db_message(url, exc)) from None
        try:
            self.conn.execute("PRAGMA query_only = ON")
            self.version = int(self.conn.execute("PRAGMA user_version").fetchone()[0] or 0)
            tasks = self.conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'tasks'").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise DatabaseError(db_message(url, exc)) from None
        try:
            schema_problem(url, self.version, bool(tasks))
        except BaseException:
            self.conn.close()
            raise

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every row of one statement as a dict; damage found by it is a DatabaseError.

        Opening checks only the header and schema: a bad page elsewhere surfaces in whatever
        query reads it.
        """
        if self.time_limit is not None:
            deadline = time.monotonic() + self.time_limit
            self.conn.set_progress_handler(lambda: time.monotonic() > deadline, 20_000)
        try:
            cursor = self.conn.execute(sql, params or {})
            names = [d[0] for d in cursor.description or ()]
            return [dict(zip(names, row)) for row in cursor.fetchall()]
        except sqlite3.Error as exc:
            if self.time_limit is not None and "interrupted" in str(exc):
                raise TooSlow(f"the query took longer than {self.time_limit:g} s; narrow it") from None
            if undecodable(exc) and self.conn.text_factory is str:
                self.conn.text_factory = lenient_text
                return self.rows(sql, params)
            if is_damage(exc):
                raise DatabaseError(db_message(self.url, exc)) from None
            raise

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "ReadDB":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
