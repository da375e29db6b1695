"""PostgreSQL without the ORM: the read commands' connection (psycopg, the same small interface as
readdb.ReadDB) and the pieces both sides share (the URL, the schema version row, messages).

The read commands must not pay for importing SQLAlchemy on PostgreSQL either, and must never
write: the connection runs every statement in a read-only transaction.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Mapping

from .errors import DatabaseError
from .readdb import schema_problem

VERSION_TABLE = "archiver_schema"  # one row: the schema version (SQLite keeps it in PRAGMA user_version)


def server_time(plus: str | None = None) -> str:
    """SQL for the server's clock (plus `plus` seconds, a parameter's name) as the text every time
    column holds (UTCDateTime: ISO 8601 in UTC, microseconds), so a fleet's leases are judged by
    one clock, not by each host's own. statement_timestamp(): one moment for the whole statement."""
    moment = "statement_timestamp()" if plus is None else f"(statement_timestamp() + make_interval(secs => {plus}))"
    return f"""to_char({moment} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""


# `archiver stats` on a fleet: each worker, alive while its lease lasts (by the server's clock), its
# claims and last run.
FLEET_SQL = f"""SELECT w.name, w.host, w.pid, w.started_at, w.heartbeat_at, w.finished_at, w.exit_code,
                      w.lease_until IS NOT NULL AND w.lease_until > {server_time()} AND w.finished_at IS NULL AS alive,
                      (SELECT COUNT(*) FROM tasks t WHERE t.claimed_by = w.name) AS tasks_claimed,
                      (SELECT COUNT(*) FROM assets a WHERE a.claimed_by = w.name AND a.state <> 'downloaded')
                          AS files_claimed
               FROM workers w ORDER BY w.name"""
FLEET_COLUMNS = ("name", "host", "pid", "started_at", "heartbeat_at", "finished_at", "exit_code", "alive",
                 "tasks_claimed", "files_claimed")
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql", "postgres:"))


def dsn(url: str) -> str:
    """The libpq connection string of an SQLAlchemy URL (`postgresql+psycopg://` -> `postgresql://`)."""
    scheme, sep, rest = url.partition("://")
    return f"postgresql://{rest}" if sep else url


@functools.cache
def pyformat(sql: str) -> str:
    """SQL written with `:name` placeholders, for psycopg's `%(name)s` (a literal % doubled)."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


def message(url: str, exc: BaseException) -> str:
    """One line about a failed PostgreSQL operation; the URL's password is never part of it."""
    from .redact import redact, url_secrets

    detail = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
    where = redact(url)
    for secret in url_secrets(url):
        detail = detail.replace(secret, "<redacted>")
    return f"{where}: database error: {redact(detail)}"


def is_outage(exc: BaseException) -> bool:
    """A psycopg error about the server or the connection, not a bug in a statement."""
    kind = type(exc)
    return kind.__module__.startswith("psycopg") and kind.__name__ in ("OperationalError", "InterfaceError")


def redact_url(url: str) -> str:
    from .redact import redact_url as hide

    return hide(url)


def version_sql() -> str:
    return (f"SELECT (SELECT version FROM {VERSION_TABLE}) AS version, "
            "to_regclass('tasks') IS NOT NULL AS has_tasks")


class PgReadDB:
    """A read-only connection to a PostgreSQL catalog; `rows` runs one statement."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        try:
            self.conn = psycopg.connect(dsn(url), autocommit=False, connect_timeout=30,
                                        options="-c default_transaction_read_only=on")
        except psycopg.Error as exc:
            raise DatabaseError(message(url, exc)) from None
        try:
            exists = self.conn.execute(f"SELECT to_regclass('{VERSION_TABLE}') IS NOT NULL").fetchone()
            if exists and exists[0]:
                row = self.conn.execute(version_sql()).fetchone()
                self.version, has_tasks = int(row[0] or 0), bool(row[1])  # type: ignore[index]
            else:
                self.version, has_tasks = 0, False
            self.conn.rollback()
        except psycopg.Error as exc:
            self.conn.close()
            raise DatabaseError(message(url, exc)) from None
        try:
            schema_problem(redact_url(url), self.version, has_tasks)
        except BaseException:
            self.conn.close()
            raise

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every row of one statement as a dict."""
        import psycopg

        try:
            with self.conn.cursor() as cursor:
                cursor.execute(pyformat(sql), dict(params or {}))  # type: ignore[arg-type]
                names = [d.name for d in cursor.description or ()]
                found = [dict(zip(names, row)) for row in cursor.fetchall()]
            self.conn.rollback()
            return found
        except psycopg.OperationalError as exc:
            raise DatabaseError(message(self.url, exc)) from None
        except psycopg.Error:
            self.conn.rollback()
            raise

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "PgReadDB":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
