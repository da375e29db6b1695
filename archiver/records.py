"""Normalized task and clip records, and the one place where provider field aliases are resolved.

Providers name the same thing differently (lyrics/lyric, tags/sound, model/mv, clip_id/id/audioId)
and encode durations and times in several ways. Every normalizer goes through the helpers here so
that the quirks are handled once.

An absurd value is invalid, not fatal: a duration outside (0, 24 h) is stored as unknown (None)
and the clip carries a one-line note in `ClipRecord.warnings` saying what was dropped, for the
caller to report (the provider's own value stays in `raw`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, Mapping


class Status(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})

# Aliases, in order of preference, for every clip field providers spell differently.
CLIP_ALIASES: dict[str, tuple[str, ...]] = {
    "clip_id": ("clip_id", "id", "audioId", "audio_id"),
    "title": ("title",),
    "tags": ("tags", "sound", "style"),
    "negative_tags": ("negative_tags", "negativeTags"),
    "lyrics": ("lyrics", "lyric", "prompt"),
    "duration": ("duration",),
    "model": ("model", "mv", "model_name"),
    "seed": ("seed",),
    "created_at": ("created_at", "createdAt"),
    "audio_url": ("audio_url", "audioUrl"),
    "image_url": ("image_url", "imageUrl", "image_large_url"),
    "video_url": ("video_url", "videoUrl"),
    "state": ("state", "status"),
}


@dataclass(frozen=True)
class ClipRecord:
    clip_id: str
    title: str | None = None
    tags: str | None = None
    negative_tags: str | None = None
    lyrics: str | None = None
    duration: float | None = None
    model: str | None = None
    seed: str | None = None
    created_at: datetime | None = None
    audio_url: str | None = None
    image_url: str | None = None
    video_url: str | None = None
    state: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # Values the normalizer refused, one line each ("duration 1e+308 is not a length in (0, 24 h); ...").
    warnings: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class TaskRecord:
    source: str
    task_id: str
    status: Status
    provider_status: str | None = None
    progress: int | None = None
    error: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    # The provider's own last-modified time, when it sends one: decides which of two payloads is newer.
    updated_at: datetime | None = None
    clips: tuple[ClipRecord, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def pick(obj: Mapping[str, Any], name: str) -> Any:
    """First non-empty alias of `name` present in `obj` (None when absent)."""
    for key in CLIP_ALIASES.get(name, (name,)):
        value = obj.get(key)
        if value is not None and value != "":
            return value
    return None


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
        text = value.strip()
        if len(text) > 64:  # a 300-digit string is no duration, and float() of it is wasted work
            return None
        try:
            return plausible_duration(float(text))
        except ValueError:
            return None
    return plausible_duration(value)


def _duration_warning(value: Any, seconds: float | None) -> tuple[str, ...]:
    if seconds is not None or value is None or value == "":
        return ()
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return (f"duration {shown} is not a length in (0, 24 h); stored as unknown",)


_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%?\s*$")


def progress(value: Any) -> int | None:
    """"20%", "20", 20 or 0.2-as-fraction are all 20; clamped to 0..100."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        match = _PERCENT.match(str(value))
        if not match:
            return None
        number = float(match.group(1))
    if math.isnan(number) or math.isinf(number):
        return None
    return max(0, min(100, round(number)))


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


def clip_from(obj: Mapping[str, Any], **overrides: Any) -> ClipRecord | None:
    """Build a ClipRecord from any provider's clip object; None if it has no usable id."""
    clip_id = text(overrides.pop("clip_id", None) or pick(obj, "clip_id"))
    if clip_id is None:
        return None
    raw_duration = pick(obj, "duration")
    values: dict[str, Any] = {
        "title": text(pick(obj, "title")),
        "tags": text(pick(obj, "tags")),
        "negative_tags": text(pick(obj, "negative_tags")),
        "lyrics": text(pick(obj, "lyrics")),
        "duration": duration(raw_duration),
        "model": text(pick(obj, "model")),
        "seed": text(pick(obj, "seed")),
        "created_at": timestamp(pick(obj, "created_at")),
        "audio_url": text(pick(obj, "audio_url")),
        "image_url": text(pick(obj, "image_url")),
        "video_url": text(pick(obj, "video_url")),
        "state": text(pick(obj, "state")),
    }
    values["warnings"] = _duration_warning(raw_duration, values["duration"])
    values.update(overrides)
    return ClipRecord(clip_id=clip_id, raw=dict(obj), **values)
