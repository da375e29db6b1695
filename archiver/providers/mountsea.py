"""MountSea: `GET /producer/tasks?taskId=ID`, one task per request.

Body: `{"taskId", "status", "result", "errorMessage", "errorCode", "finishedAt", "createdAt"}`;
`result` (only when completed) is one clip `{audioId, audioUrl, duration, title}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ..errors import PayloadError
from ..records import ClipRecord, Status, TaskRecord, clip_from, text, timestamp
from .base import BaseSource, Request
from .simulated import FAIL_REASON, SimCall, SimTask, UrlFor, iso

STAGES = ("pending", "ready", "assigned", "processing")  # the non-final statuses, in order
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
    base_url: ClassVar[str] = "https://api.mountsea.ai/"
    batch: ClassVar[bool] = False
    interval: ClassVar[float] = 5.0  # "start with a 5-second interval"
    sim_clips: ClassVar[int | None] = 1  # one clip per task
    sim_demo: ClassVar[tuple[str, ...]] = ("succeeded", "succeeded", "timeout")

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

    # -- simulator ---------------------------------------------------------------------------

    def sim_route(self, method: str, path: list[str], query: Mapping[str, str],
                  body: Mapping[str, Any]) -> SimCall | None:
        if path != ["producer", "tasks"] or method != "GET":
            return None
        return SimCall([query.get("taskId", "")], bad=("", "taskId is required"))

    def sim_error(self, status: int, code: str, message: str) -> Any:
        return {"statusCode": status, "message": message}

    def sim_unauthorized(self) -> Any:
        return self.sim_error(401, "invalid_token", "Unauthorized")

    def sim_not_found(self) -> tuple[int, Any]:
        return 404, self.sim_error(404, "not_found", "Task not found")

    def sim_render(self, task: SimTask, url: UrlFor, weird: str | None) -> Any:
        stage, _pct = task.stage()
        status = weird or (STAGES[stage] if stage is not None
                           else "completed" if task.succeeded else task.outcome)
        body: dict[str, Any] = {"taskId": task.task_id, "status": status}
        if status == "completed" and task.clips:
            clip = task.clips[0]
            body["result"] = {"audioId": clip.clip_id, "audioUrl": url(clip, clip.audio_ext),
                              "duration": clip.duration, "title": clip.title}
        elif status in ("failed", "timeout"):
            body["errorMessage"] = FAIL_REASON[task.outcome]
            body["errorCode"] = 504 if status == "timeout" else 500
        if stage is None and not weird:
            body["finishedAt"] = iso(task.finished_at)
        body["createdAt"] = iso(task.created)
        body["traceId"] = f"trace-{task.aux['trace'][:8]}"
        return body
