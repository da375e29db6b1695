"""Normalized task and clip records, the helpers every normalizer builds them with, and poll outcomes.

Providers name the same thing differently (lyrics/lyric, tags/sound, model/mv, clip_id/id/audioId)
and encode durations and times in several ways. Every normalizer goes through `clip_from` and the
parsers re-exported here, which follow the clip-field table in fields.py, so that the quirks are
handled once.

An absurd value is invalid, not fatal: a duration outside (0, 24 h) is stored as unknown (None)
and the clip carries a one-line note in `ClipRecord.warnings` saying what was dropped, for the
caller to report (the provider's own value stays in `raw`).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from .fields import (CLIP_ALIASES, CLIP_TABLE, MAX_DURATION, TERMINAL, Status, duration, plausible_duration, text,
                     timestamp)

__all__ = ["CLIP_ALIASES", "MAX_DURATION", "TERMINAL", "ClipRecord", "PollKind", "PollOutcome", "Status", "TaskRecord",
           "clip_from", "duration", "pick", "plausible_duration", "progress", "text", "timestamp"]


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


class PollKind(StrEnum):
    OK = "ok"
    ERROR = "error"
    NOT_FOUND = "notfound"


@dataclass(frozen=True)
class PollOutcome:
    """What one poll of one task came to: answered, failed, or not found (with the one-line why)."""

    kind: PollKind
    message: str | None = None

    @classmethod
    def ok(cls) -> "PollOutcome":
        return cls(PollKind.OK)

    @classmethod
    def error(cls, message: str) -> "PollOutcome":
        return cls(PollKind.ERROR, message)

    @classmethod
    def not_found(cls, message: str) -> "PollOutcome":
        return cls(PollKind.NOT_FOUND, message)


def pick(obj: Mapping[str, Any], name: str) -> Any:
    """First non-empty alias of `name` present in `obj` (None when absent)."""
    for key in CLIP_ALIASES.get(name, (name,)):
        value = obj.get(key)
        if value is not None and value != "":
            return value
    return None


def _duration_warning(value: Any, seconds: float | None) -> tuple[str, ...]:
    if seconds is not None or value is None or value == "":
        return ()
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return (f"duration {shown} is not a length in (0, 24 h); stored as unknown",)


@functools.cache
def _pattern(source: str) -> re.Pattern[str]:
    """Compiled on first use, so importing this module costs no regex compile."""
    return re.compile(source)


_PERCENT = r"^\s*(\d+(?:\.\d+)?)\s*%?\s*$"


def progress(value: Any) -> int | None:
    """"20%", "20", 20 or 0.2-as-fraction are all 20; clamped to 0..100."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        match = _pattern(_PERCENT).match(str(value))
        if not match:
            return None
        number = float(match.group(1))
    if math.isnan(number) or math.isinf(number):
        return None
    return max(0, min(100, round(number)))


def clip_from(obj: Mapping[str, Any], **overrides: Any) -> ClipRecord | None:
    """Build a ClipRecord from any provider's clip object; None if it has no usable id."""
    clip_id = text(overrides.pop("clip_id", None) or pick(obj, "clip_id"))
    if clip_id is None:
        return None
    values: dict[str, Any] = {f.name: f.parse(pick(obj, f.name)) for f in CLIP_TABLE if f.name != "clip_id"}
    values["warnings"] = _duration_warning(pick(obj, "duration"), values["duration"])
    values.update(overrides)
    return ClipRecord(clip_id=clip_id, raw=dict(obj), **values)
