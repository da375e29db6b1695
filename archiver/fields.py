"""The library's vocabulary: one table of clip fields, task statuses, asset kinds and states, run counters.

`CLIP_TABLE` has one row per clip field, in the style of beets' mediafile: how a raw provider value
is parsed, which raw keys providers use for it, how the query language matches it, and whether it
is a path-template field and a listing column. The normalizers' aliases (records), the store's
upsert columns, the path-template fields (paths), the query language's clip fields (query) and
the listing columns (library) are derived from it. `ClipRecord`, the SQLModel models and the
frozen migration SQL stay written out; tests/test_fields.py checks them against this table.

The parsers live here too, beside the rows that use them: an absurd value is invalid, not fatal
(a duration outside (0, 24 h) is unknown, None), so that every normalizer handles it once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, Callable

# ---------------------------------------------------------------- parsers


def text(value: Any) -> str | None:
    """A string field, or None for missing/empty; numbers become their decimal text."""
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    result = str(value)
    return result if result.strip() else None


MAX_DURATION = 24 * 3600.0  # seconds; no generated song is a day long, so more is a broken value


def plausible_duration(seconds: Any) -> float | None:
    """`seconds` as float when inside (0, MAX_DURATION), else None: for values already stored."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return None
    try:
        value = float(seconds)
    except OverflowError:  # an int beyond float range
        return None
    return value if 0 < value < MAX_DURATION else None


def duration(value: Any) -> float | None:
    """Seconds as float from a number, a numeric string, or None; nonsense or out of range is None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        stripped = value.strip()
        if len(stripped) > 64:  # a 300-digit string is no duration, and float() of it is wasted work
            return None
        try:
            return plausible_duration(float(stripped))
        except ValueError:
            return None
    return plausible_duration(value)


def timestamp(value: Any) -> datetime | None:
    """UTC datetime from epoch seconds (int/float/str), epoch milliseconds, or ISO 8601.

    0 and empty strings mean "not yet" in the CCAPI records, so they map to None.
    """
    if value is None or isinstance(value, bool) or value == "":
        return None
    if isinstance(value, str):
        stripped = value.strip()
        try:
            value = float(stripped)
        except ValueError:
            return _iso(stripped)
    if not isinstance(value, (int, float)):
        return None
    seconds = float(value)
    if math.isnan(seconds) or math.isinf(seconds) or seconds <= 0:
        return None
    if seconds > 1e11:  # milliseconds
        seconds /= 1000.0
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _iso(value: str) -> datetime | None:
    candidate = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


# ---------------------------------------------------------------- tasks and assets


class Status(StrEnum):
    """Where a task stands; the value is what the `tasks.status` column holds."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})


class AssetKind(StrEnum):
    """A downloadable file of a clip; the value is what the `assets.kind` column holds."""

    AUDIO = "audio"
    IMAGE = "image"
    VIDEO = "video"


class AssetState(StrEnum):
    """Where an asset stands; the value is what the `assets.state` column holds."""

    PENDING = "pending"
    DOWNLOADED = "downloaded"
    FAILED = "failed"


# ---------------------------------------------------------------- the clip-field table


class ClipField:
    """One clip field and every fact the package needs about it (a plain class: every command
    loads this table, and defining it as a dataclass costs about a millisecond at each start)."""

    __slots__ = ("aliases", "asset", "folded_sort", "listed", "name", "parse", "query", "query_name", "sticky",
                 "template")

    def __init__(self, name: str, parse: Callable[[Any], Any], aliases: tuple[str, ...] = (), *,
                 query: str | None = None, query_name: str | None = None, folded_sort: bool = False,
                 template: str | None = None, listed: bool = False, asset: AssetKind | None = None,
                 sticky: bool = True) -> None:
        self.name = name  # attribute of ClipRecord, column of `clips`
        self.parse = parse  # raw provider value -> stored value (None when unusable)
        self.aliases = aliases or (name,)  # raw keys providers use, in order of preference (name first)
        self.query = query  # query-language kind: text | id | number | date; None = not queryable
        self.query_name = query_name  # its name in the query language (defaults to `name`)
        self.folded_sort = folded_sort  # sorts case-insensitively
        self.template = template  # its name in path templates; None = not a template field
        self.listed = listed  # a column of `ls`/`search` output and of the `tracks` view
        self.asset = asset  # the URL of this kind of file
        self.sticky = sticky  # a later, sparser payload without it keeps what an earlier one said

    def __repr__(self) -> str:
        return f"ClipField({self.name!r})"


CLIP_TABLE: tuple[ClipField, ...] = (
    ClipField("clip_id", text, ("clip_id", "id", "audioId", "audio_id"), query="id", query_name="clip",
              template="clip_id", listed=True),
    ClipField("title", text, query="text", folded_sort=True, template="title", listed=True),
    ClipField("tags", text, ("tags", "sound", "style"), query="text", folded_sort=True, template="tags",
              listed=True),
    ClipField("negative_tags", text, ("negative_tags", "negativeTags"), template="negative_tags", listed=True),
    ClipField("lyrics", text, ("lyrics", "lyric", "prompt"), query="text", template="lyrics", listed=True),
    ClipField("duration", duration, query="number", template="duration", listed=True),
    ClipField("model", text, ("model", "mv", "model_name"), query="text", template="model", listed=True),
    ClipField("seed", text, query="text", template="seed", listed=True),
    ClipField("state", text, ("state", "status"), sticky=False),
    ClipField("created_at", timestamp, ("created_at", "createdAt"), query="date", query_name="created",
              template="created", listed=True),
    ClipField("audio_url", text, ("audio_url", "audioUrl"), listed=True, asset=AssetKind.AUDIO),
    ClipField("image_url", text, ("image_url", "imageUrl", "image_large_url"), listed=True,
              asset=AssetKind.IMAGE),
    ClipField("video_url", text, ("video_url", "videoUrl"), listed=True, asset=AssetKind.VIDEO),
)

CLIP_FIELD: dict[str, ClipField] = {f.name: f for f in CLIP_TABLE}
# What a payload may update on a stored clip (clip_id is the key, not a value).
STORED_FIELDS: tuple[str, ...] = tuple(f.name for f in CLIP_TABLE if f.name != "clip_id")
# Raw keys per field, for records.pick.
CLIP_ALIASES: dict[str, tuple[str, ...]] = {f.name: f.aliases for f in CLIP_TABLE}
# Which clip field holds the URL of each kind of file.
URL_FIELDS: dict[AssetKind, str] = {f.asset: f.name for f in CLIP_TABLE if f.asset is not None}


# ---------------------------------------------------------------- run counters


@dataclass
class RunCounters:
    """The counts of one sync run that `sync_runs` keeps (its columns of the same names)."""

    tasks_polled: int = 0
    newly_succeeded: int = 0
    failed: int = 0
    clips_added: int = 0
    requests: int = 0
    files_downloaded: int = 0
    bytes_downloaded: int = 0

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in RUN_COUNTERS}


RUN_COUNTERS: tuple[str, ...] = tuple(f.name for f in fields(RunCounters))
