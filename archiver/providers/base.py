"""The protocol every task source implements, and the pieces they share.

A source is pure where it can be: `request_for` says which HTTP call fetches some ids and
`normalize` turns a raw JSON body into TaskRecords. Its class also states the provider's facts
(settings section, default base URL, poll interval, batch size) and, through the `Simulated`
hooks, how the simulator imitates it. The network itself lives in `http.py`, so a new provider is
one module plus a registry line in `__init__.py`; config, the CLI, the demo and the simulator
read the registry.
"""

from __future__ import annotations

import functools
import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from ..errors import PayloadError, ProviderError, TaskNotFound, UsageError
from ..records import Status, TaskRecord, text
from ..redact import redactor
from .simulated import Simulated


@dataclass(frozen=True)
class Request:
    """One HTTP call, relative to the provider's base URL."""

    method: str
    path: str
    params: Mapping[str, str] | None = None
    json: Any = None


class Source(Protocol):
    name: ClassVar[str]  # "ccapi-suno"
    provider: ClassVar[str]  # settings section: "ccapi"
    base_url: ClassVar[str]  # the provider's documented base URL (settings default)
    batch: ClassVar[bool]  # True when one request can fetch many ids
    batch_size: ClassVar[int]  # ids per batch request (settings default); the docs state no maximum
    interval: ClassVar[float]  # documented polling interval, seconds

    def request_for(self, ids: Sequence[str]) -> Request:
        """The request that fetches `ids` (exactly one id unless `batch`)."""
        ...

    def normalize(self, payload: Any, *, task_id: str | None = None) -> list[TaskRecord]:
        """Raw JSON body -> records. Pure; raises PayloadError/ProviderError on a bad body."""
        ...

    def detect(self, payload: Any) -> bool:
        """Whether a saved body looks like this source's (for `archiver import`)."""
        ...

    def error_for(self, status: int, payload: Any, ids: Sequence[str]) -> Exception:
        """The error for a non-2xx answer that is not auth/transient (404, 400 ...)."""
        ...

    def check_id(self, task_id: str) -> None:
        """Raise UsageError for an id this source could not send safely."""
        ...


class BaseSource(Simulated):
    """Defaults shared by the concrete sources."""

    name: ClassVar[str] = ""
    provider: ClassVar[str] = ""
    base_url: ClassVar[str] = ""
    batch: ClassVar[bool] = False
    batch_size: ClassVar[int] = 50
    interval: ClassVar[float] = 10.0

    def error_for(self, status: int, payload: Any, ids: Sequence[str]) -> Exception:
        message = error_message(payload) or f"HTTP {status}"
        if status in (404, 410) and len(ids) == 1:
            return TaskNotFound(self.name, ids[0], message)
        return ProviderError(self.name, f"HTTP {status}: {message}", status_code=status)

    def check_id(self, task_id: str) -> None:
        check_id(self.name, task_id)

    def _require_mapping(self, payload: Any, what: str = "a JSON object") -> Mapping[str, Any]:
        if not isinstance(payload, Mapping):
            raise PayloadError(self.name, f"expected {what}, got {type(payload).__name__}")
        return payload


@functools.cache
def _pattern(source: str) -> re.Pattern[str]:
    """Compiled on first use, so importing this module costs no regex compile."""
    return re.compile(source)


_LONE_SURROGATE = "[\ud800-\udfff]"
_UNSENDABLE = "[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]"


def check_id(source: str, task_id: str) -> None:
    """Control characters and line breaks in an id are a typo or an attack, never a task: refuse them."""
    if not task_id:
        raise UsageError(f"{source}: a task id is empty")
    if _pattern(_UNSENDABLE).search(task_id):
        raise UsageError(f"{source}: task id {task_id!r} holds control characters")


def path_segment(source: str, task_id: str) -> str:
    """An id as exactly one URL path segment: percent-encoded, so `/`, `?`, `#` stay in the id.

    `.` and `..` are refused rather than encoded: servers decode `%2E%2E` and resolve it, which
    would send the token to another path.
    """
    check_id(source, task_id)
    if task_id in (".", ".."):
        raise UsageError(f"{source}: task id {task_id!r} cannot be placed in a URL path")
    return urllib.parse.quote(task_id, safe="")


def parse_json(data: bytes | str, *, secrets: Iterable[str | None] = ()) -> Any:
    """A provider's JSON body, with every string valid Unicode and without any secret.

    A stray byte that is not UTF-8 becomes U+FFFD instead of failing the poll on every run. JSON may
    also carry a lone UTF-16 surrogate ("\\ud83c": a JavaScript backend cutting a title inside an
    emoji); no UTF-8 writer (SQLite, tags, the terminal) accepts it, so it becomes U+FFFD too.
    Secrets (`secrets` plus the registered ones) are removed after decoding, so no JSON escape
    can hide one. Raises ValueError when the body is not JSON, RecursionError when it nests
    absurdly deep.
    """
    if isinstance(data, bytes):
        text = data.decode(json.detect_encoding(data), "replace")
        suspect = "\\ud" in text or "\\uD" in text  # decoding with "replace" leaves no raw surrogate
    else:  # text read with surrogateescape (stdin) may hold them raw
        text = data
        suspect = "\\ud" in text or "\\uD" in text or _pattern(_LONE_SURROGATE).search(text) is not None
    payload = json.loads(text)
    scrub = redactor(secrets)
    if scrub.secrets and (scrub.holds_secret(text) or (scrub.escapes_hide and "\\" in text)):
        payload = scrub.value(_valid_text(payload) if suspect else payload)
    elif suspect:
        payload = _valid_text(payload)
    return payload


def _valid_text(value: Any) -> Any:
    if isinstance(value, str):
        return _pattern(_LONE_SURROGATE).sub("\ufffd", value)
    if isinstance(value, list):
        return [_valid_text(item) for item in value]
    if isinstance(value, dict):
        return {_valid_text(key): _valid_text(item) for key, item in value.items()}
    return value


def error_message(payload: Any) -> str | None:
    """The human message inside any provider's error body."""
    if not isinstance(payload, Mapping):
        return None
    error = payload.get("error")
    if isinstance(error, Mapping):
        parts = [str(error[k]) for k in ("code", "message") if error.get(k)]
        return ": ".join(parts) or None
    for key in ("message", "errorMessage", "msg", "detail"):
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def newest_per_task(records: Sequence[TaskRecord]) -> list[TaskRecord]:
    """Collapse duplicates of one task: newest `updated_at` wins, then the more advanced status.

    Position in the list never matters: the CCAPI batch example lists a stale record after the
    fresh one.
    """
    best: dict[str, TaskRecord] = {}
    for record in records:
        current = best.get(record.task_id)
        if current is None or _rank(record) > _rank(current):
            best[record.task_id] = record
    return list(best.values())


FAILED_STATES = frozenset({"failed", "failure", "error", "cancelled", "canceled"})
DONE_STATES = frozenset({"succeeded", "success", "completed", "complete"})


@dataclass(frozen=True)
class ClipStates:
    """A task's state judged from its clips, for providers that report state per clip only."""

    status: Status
    provider_status: str
    progress: int | None
    error: str | None


def status_from_clips(states: Sequence[str | None]) -> Status:
    """All succeeded -> succeeded, any failed -> failed, otherwise still running."""
    lowered = [(s or "").lower() for s in states]
    if any(s in FAILED_STATES for s in lowered):
        return Status.FAILED
    if lowered and all(s in DONE_STATES for s in lowered):
        return Status.SUCCEEDED
    return Status.RUNNING


def clip_states(
    states: Sequence[str | None], objs: Sequence[Mapping[str, Any]], percents: Iterable[int | None], *, id_key: str
) -> ClipStates:
    """Status, summary, progress and error of a task from its clips' states and raw objects.

    Progress is the slowest clip's; the error joins every failed clip's own message.
    """
    status = status_from_clips(states)
    error = None
    if status is Status.FAILED:
        error = "; ".join(
            text(o.get("error_message") or o.get("error")) or f"clip {o.get(id_key)} failed"
            for o in objs
            if (text(o.get("state")) or "").lower() in FAILED_STATES
        )
    known = [p for p in percents if p is not None]
    return ClipStates(
        status=status,
        provider_status=",".join(sorted({s or "unknown" for s in states})) or "no clips yet",
        progress=min(known) if known else (100 if status is Status.SUCCEEDED else None),
        error=error,
    )


_STATUS_RANK = {"pending": 0, "running": 1, "failed": 2, "cancelled": 2, "succeeded": 3}


def _rank(record: TaskRecord) -> tuple[float, int, int]:
    stamp = record.updated_at.timestamp() if record.updated_at else float("-inf")
    return (stamp, _STATUS_RANK[record.status], len(record.clips))
