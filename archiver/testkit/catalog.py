"""A library's catalog read and written as an independent client would: the standard library's
sqlite3 on the SQLite file, psycopg on a PostgreSQL URL. Tests check what archiver stored through
this, never through archiver's own store, and write what they need to stage the same way on
either engine.

SQL is written once with `?` placeholders; rows read alike on both engines, by position or by
column name.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Self, SupportsIndex, overload

from ..pgdb import dsn, is_postgres


class Row(tuple[Any, ...]):
    """A row by position or by column name (like sqlite3.Row), equal to the plain tuple of its values."""

    _index: dict[str, int]

    def __new__(cls, index: dict[str, int], values: Sequence[Any]) -> Self:
        row = super().__new__(cls, values)
        row._index = index
        return row

    @overload
    def __getitem__(self, key: SupportsIndex | str) -> Any: ...

    @overload
    def __getitem__(self, key: slice) -> tuple[Any, ...]: ...

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _index(description: Any) -> dict[str, int]:
    return {str(column[0]): number for number, column in enumerate(description or ())}


class Catalog:
    """The catalog at an SQLAlchemy-style URL: `sqlite:///path` or `postgresql+psycopg://...`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = is_postgres(url)
        self.path = None if self.postgres else Path(url.removeprefix("sqlite:///"))

    @classmethod
    def sqlite(cls, db: Path) -> Catalog:
        return cls(f"sqlite:///{db}")

    def _pg(self) -> Any:
        import psycopg

        return psycopg.connect(dsn(self.url))

    def rows(self, sql: str, *params: Any) -> list[Row]:
        """The rows of one statement."""
        if self.path is None:
            with self._pg() as conn:
                cursor = conn.execute(_pg_sql(sql), params)
                index = _index(cursor.description)
                return [Row(index, values) for values in cursor.fetchall()]
        con = sqlite3.connect(self.path)
        try:
            cursor = con.execute(sql, params)
            index = _index(cursor.description)
            return [Row(index, values) for values in cursor.fetchall()]
        finally:
            con.close()

    def execute(self, sql: str, *params: Any) -> None:
        """One write, committed."""
        self.executemany(sql, [params])

    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        """One statement for each set of parameters, committed together."""
        if self.path is None:
            with self._pg() as conn, conn.cursor() as cursor:
                for values in params:
                    cursor.execute(_pg_sql(sql), tuple(values))
            return
        con = sqlite3.connect(self.path)
        try:
            with con:
                con.executemany(sql, params)
        finally:
            con.close()

    def exists(self) -> bool:
        """Whether there is a catalog to read at all (a file; on PostgreSQL, the tasks table)."""
        if self.path is None:
            return bool(self.rows("SELECT to_regclass('tasks') IS NOT NULL")[0][0])
        return self.path.exists()

    def integrity(self) -> str:
        """"ok", or what the engine's own consistency check found.

        SQLite: `PRAGMA integrity_check`. PostgreSQL: amcheck's `bt_index_check` of every B-tree
        index, with every table row looked up in it (`heapallindexed`), so an index that disagrees
        with its table (a unique rule that no longer holds) is found; "ok" without a check where
        the amcheck extension is not installed.
        """
        if self.path is not None:
            con = sqlite3.connect(self.path)
            try:
                return str(con.execute("PRAGMA integrity_check").fetchone()[0])
            finally:
                con.close()
        import psycopg

        with self._pg() as conn:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
            except (psycopg.errors.UndefinedFile, psycopg.errors.FeatureNotSupported):
                return "ok"
            conn.commit()
            indexes = [str(r[0]) for r in conn.execute(
                "SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_am am ON am.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE am.amname = 'btree' AND n.nspname = 'public' ORDER BY 1")]
            problems = []
            for name in indexes:
                try:
                    conn.execute("SELECT bt_index_check(%s::regclass, true)", (name,))
                except psycopg.Error as exc:
                    conn.rollback()
                    problems.append(f"{name}: {str(exc).strip().splitlines()[0]}")
            return "; ".join(problems) or "ok"

    def drop(self) -> None:
        """The catalog lost: the SQLite file and its companions deleted, or every table of the
        PostgreSQL database dropped (the server and the empty database stay, as after a restore
        that failed)."""
        if self.path is None:
            with self._pg() as conn:
                conn.execute("DROP SCHEMA public CASCADE")
                conn.execute("CREATE SCHEMA public")
            return
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)

    def text(self) -> str:
        """Every value of every table, as text: where a secret would show if the catalog held one."""
        if self.path is None:
            tables = [r[0] for r in self.rows("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                              "ORDER BY tablename")]
        else:
            tables = [r[0] for r in self.rows("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return "\n".join(f"{table}: {tuple(row)!r}" for table in tables
                         for row in self.rows(f'SELECT * FROM "{table}"'))


def _pg_sql(sql: str) -> str:
    """`?` placeholders as psycopg's `%s` (a literal % doubled: parameters, even none, are always passed)."""
    return sql.replace("%", "%%").replace("?", "%s")
