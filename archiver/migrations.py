"""Schema versions, kept in `PRAGMA user_version`, and the steps between them.

A new library gets the current schema at once. An older one is moved forward step by step, each
step in its own transaction, so a release that changes the schema upgrades a library in place
without losing rows. Add a step by appending a function to STEPS; never edit a released one.
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from . import models  # noqa: F401  (registers the tables on SQLModel.metadata)


def _v1_tables(conn: Connection) -> None:
    SQLModel.metadata.create_all(conn)


STEPS: list[Callable[[Connection], None]] = [_v1_tables]
SCHEMA_VERSION = len(STEPS)


def current_version(conn: Connection) -> int:
    return int(conn.execute(text("PRAGMA user_version")).scalar() or 0)


def migrate(engine: Engine) -> int:
    """Bring the database to SCHEMA_VERSION; returns the version it started at."""
    with engine.begin() as conn:
        start = current_version(conn)
        if start > SCHEMA_VERSION:
            from .errors import DatabaseError

            raise DatabaseError(
                f"the library database has schema version {start}, newer than this archiver "
                f"understands ({SCHEMA_VERSION}); upgrade archiver"
            )
    for version in range(start, SCHEMA_VERSION):
        with engine.begin() as conn:
            STEPS[version](conn)
            conn.execute(text(f"PRAGMA user_version = {version + 1}"))
    return start
