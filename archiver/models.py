"""The library database schema (SQLModel on SQLite, or on a shared PostgreSQL catalog).

Times are stored as ISO 8601 UTC text (`2026-03-13T07:13:16.900000+00:00` sorts and reads well
in sqlite3 and Datasette) and come back as aware UTC datetimes, on both engines. The schema version
lives in `PRAGMA user_version` (PostgreSQL: the `archiver_schema` row); `migrations.migrate` moves an
older library forward in place.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

import orjson
from sqlalchemy import Column, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from .fields import CLIP_FIELD, STORED_FIELDS, AssetState
from .records import TERMINAL, ClipRecord, Status, TaskRecord


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, ISO 8601 UTC text on disk, aware UTC datetimes out."""

    impl = String(32)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat(timespec="microseconds")

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        """A stored time; None for text that is not one (another tool's write), as for no time."""
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _time(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("source", "task_id", name="uq_tasks_source_task"),
        Index("ix_tasks_poll", "status", "next_poll_at"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    source: str = Field(index=True)
    task_id: str
    status: str = Field(default=Status.PENDING.value)
    provider_status: Optional[str] = None
    progress: Optional[int] = None
    error: Optional[str] = None
    created_at: Optional[datetime] = _time()
    finished_at: Optional[datetime] = _time()
    provider_updated_at: Optional[datetime] = _time()
    first_seen: Optional[datetime] = _time()
    last_polled: Optional[datetime] = _time()
    updated_at: Optional[datetime] = _time()
    next_poll_at: Optional[datetime] = _time()
    polls: int = 0
    idle_polls: int = 0  # consecutive polls that changed nothing: drives the back-off
    poll_errors: int = 0  # consecutive failed polls: also backs off, and ends unknown ids
    not_found_since: Optional[datetime] = _time()  # start of the current run of not-found answers
    raw_json: Optional[str] = Field(default=None, sa_column=Column(Text))


class Clip(SQLModel, table=True):
    __tablename__ = "clips"
    __table_args__ = (UniqueConstraint("source", "clip_id", name="uq_clips_source_clip"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    source: str
    clip_id: str = Field(index=True)
    task_pk: int = Field(sa_column=Column(Integer, ForeignKey("tasks.id", ondelete="CASCADE"), index=True))
    title: Optional[str] = None
    tags: Optional[str] = None
    negative_tags: Optional[str] = None
    lyrics: Optional[str] = Field(default=None, sa_column=Column(Text))
    duration: Optional[float] = None
    model: Optional[str] = None
    seed: Optional[str] = None
    state: Optional[str] = None
    created_at: Optional[datetime] = _time(index=True)
    audio_url: Optional[str] = None
    image_url: Optional[str] = None
    video_url: Optional[str] = None
    first_seen: Optional[datetime] = _time()
    updated_at: Optional[datetime] = _time()
    raw_json: Optional[str] = Field(default=None, sa_column=Column(Text))


class Asset(SQLModel, table=True):
    """A downloadable file of a clip. `path` is set only once the file is complete in place."""

    __tablename__ = "assets"
    __table_args__ = (
        UniqueConstraint("clip_pk", "kind", name="uq_assets_clip_kind"),
        Index("ix_assets_state", "state"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    clip_pk: int = Field(sa_column=Column(Integer, ForeignKey("clips.id", ondelete="CASCADE"), index=True))
    kind: str  # a fields.AssetKind
    url: Optional[str] = None
    path: Optional[str] = Field(default=None, index=True)  # relative to the library root, POSIX
    size: Optional[int] = None
    sha256: Optional[str] = None
    state: str = AssetState.PENDING.value  # a fields.AssetState
    attempts: int = 0
    last_error: Optional[str] = None
    warning: Optional[str] = None
    tagged: bool = False
    created_at: Optional[datetime] = _time()
    updated_at: Optional[datetime] = _time()
    downloaded_at: Optional[datetime] = _time()


class SyncRun(SQLModel, table=True):
    """One sync run; its counter columns are fields.RunCounters (tests/test_fields.py holds them equal)."""

    __tablename__ = "sync_runs"

    id: Optional[int] = Field(default=None, primary_key=True)
    started_at: Optional[datetime] = _time()
    finished_at: Optional[datetime] = _time()
    exit_code: Optional[int] = None
    tasks_polled: int = 0
    newly_succeeded: int = 0
    failed: int = 0
    clips_added: int = 0
    requests: int = 0
    errors: int = 0
    files_downloaded: int = 0
    bytes_downloaded: int = 0
    error_text: Optional[str] = Field(default=None, sa_column=Column(Text))


# ---------------------------------------------------------------- rows from records


_RAW_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False)
_RAW_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS  # str() of them, as json's default


def dumps(value: Any) -> str:
    """The `raw_json` text of a provider payload: compact JSON, the text the standard encoder
    gives but for the spelling of some exponents (1.5e-7, not 1.5e-07) and for NaN and Infinity
    (which Python's JSON reader takes from a provider and no other reader, SQLite's included,
    accepts back), stored as null.

    orjson takes ~1.5 µs for a typical task record where the standard encoder took 8-15 µs, once
    per polled task; what it refuses (an integer past 64 bits, nesting past 255, a key that is
    not text) goes through the standard encoder.
    """
    try:
        return orjson.dumps(value, default=str, option=_RAW_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return _RAW_JSON.encode(_finite(value))


def _finite(value: Any) -> Any:
    """The payload with NaN and the infinities as null, as orjson writes them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value


# The task columns a record sets (the provider's `updated_at` is stored as `provider_updated_at`).
TASK_VALUES: tuple[str, ...] = ("status", "provider_status", "progress", "error", "created_at", "finished_at",
                                "provider_updated_at")
_TERMINAL_VALUES = frozenset(s.value for s in TERMINAL)


def is_stale(row: Mapping[str, Any], record: TaskRecord) -> bool:
    """An older payload than the one stored: a running record after a finished one, or older by time."""
    if row["status"] in _TERMINAL_VALUES and not record.status.terminal:
        return True
    stored = row["provider_updated_at"]
    return bool(stored and record.updated_at and record.updated_at < stored)


def update_task(row: dict[str, Any], record: TaskRecord) -> bool:
    """Copy a record's values into a task row (column -> value); True when any changed."""
    changed = False
    for name, value in zip(TASK_VALUES, (record.status.value, record.provider_status, record.progress, record.error,
                                         record.created_at, record.finished_at, record.updated_at)):
        if row[name] != value:
            row[name] = value
            changed = True
    return changed


_STICKY = tuple((name, CLIP_FIELD[name].sticky) for name in STORED_FIELDS)


def update_clip(row: dict[str, Any], record: ClipRecord) -> set[str]:
    """Copy a record's fields into a clip row (sticky fields keep a known value); the names that changed."""
    changed: set[str] = set()
    for name, sticky in _STICKY:
        value = getattr(record, name)
        old = row[name]
        if value is None and old is not None and sticky:
            continue  # a later, sparser payload never erases what an earlier one said
        if old != value:
            row[name] = value
            changed.add(name)
    return changed
