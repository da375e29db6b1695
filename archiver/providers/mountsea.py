"""MountSea: `GET /producer/tasks?taskId=ID`, one task per request.

Body: `{"taskId", "status", "result", "errorMessage", "errorCode", "finishedAt", "createdAt"}`;
`result` (only when completed) is one clip `{audioId, audioUrl, duration, title}`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Sequence

from ..errors import PayloadError
from ..records import ClipRecord, Status, TaskRecord, clip_from, text, timestamp
from .base import BaseSource, Request

STATUS_MAP: dict[str, Status] = {
    "pending": Status.PENDING,
    "ready": Status.PENDING,
    "assigned": Status.PENDING,
    "processing": Status.RUNNING,
    "completed": Status.SUCCEEDED,
    "failed": Status.FAILED,
    "timeout": Status.FAILED,
    "cancelled": Status.CANCELLED,
}


class Mountsea(BaseSource):
    name: ClassVar[str] = "mountsea"
    provider: ClassVar[str] = "mountsea"
    batch: ClassVar[bool] = False
    interval: ClassVar[float] = 5.0  # "start with a 5-second interval"

    def request_for(self, ids: Sequence[str]) -> Request:
        (task_id,) = ids
        return Request("GET", "producer/tasks", params={"taskId": task_id})

    def detect(self, payload: Any) -> bool:
        return isinstance(payload, Mapping) and "taskId" in payload and "status" in payload

    def normalize(self, payload: Any, *, task_id: str | None = None) -> list[TaskRecord]:
        body = self._require_mapping(payload)
        found_id = text(body.get("taskId")) or task_id
        raw_status = text(body.get("status"))
        if found_id is None or raw_status is None:
            missing = "taskId" if found_id is None else "status"
            raise PayloadError(self.name, f"body has no {missing!r}")
        status = STATUS_MAP.get(raw_status.lower(), Status.RUNNING)
        error = None
        if status in (Status.FAILED, Status.CANCELLED):
            detail = text(body.get("errorMessage"))
            code = text(body.get("errorCode"))
            error = raw_status.lower()
            if detail:
                error += f": {detail}"
            if code:
                error += f" (code {code})"
        clips = self._clips(body.get("result"), found_id) if status is Status.SUCCEEDED else ()
        return [
            TaskRecord(
                source=self.name,
                task_id=found_id,
                status=status,
                provider_status=raw_status,
                progress=100 if status is Status.SUCCEEDED else None,
                error=error,
                created_at=timestamp(body.get("createdAt")),
                finished_at=timestamp(body.get("finishedAt")),
                clips=clips,
                raw=dict(body),
            )
        ]

    def _clips(self, result: Any, task_id: str) -> tuple[ClipRecord, ...]:
        """`result` is one clip in the docs; lists and `{clips: [...]}` are accepted too."""
        if isinstance(result, Mapping) and isinstance(result.get("clips"), list):
            result = result["clips"]
        objs = result if isinstance(result, list) else [result] if isinstance(result, Mapping) else []
        clips = []
        for index, obj in enumerate(o for o in objs if isinstance(o, Mapping)):
            fallback = task_id if len(objs) == 1 else f"{task_id}-{index}"
            clip = clip_from(obj) or clip_from(obj, clip_id=fallback)
            if clip is not None:
                clips.append(clip)
        return tuple(clips)
