"""What the two CCAPI platforms (suno, producer) share: one envelope, one task record shape.

Body: `{"code": "success", "message": "", "data": {record}}` or, from the batch endpoint,
`"data": [records]`. A record carries `status` (NOT_START ... SUCCESS/FAILURE), `progress` "20%",
epoch-second times where 0 means "not yet", and music results in `data.clips[]`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Sequence

from ..errors import PayloadError, ProviderError, TaskNotFound
from ..records import Status, TaskRecord, clip_from, progress, text, timestamp
from .base import BaseSource, Request, error_message, newest_per_task

STATUS_MAP: dict[str, Status] = {
    "NOT_START": Status.PENDING,
    "SUBMITTED": Status.PENDING,
    "QUEUED": Status.PENDING,
    "IN_PROGRESS": Status.RUNNING,
    "SUCCESS": Status.SUCCEEDED,
    "FAILURE": Status.FAILED,
}


class CcapiSource(BaseSource):
    provider: ClassVar[str] = "ccapi"
    batch: ClassVar[bool] = True
    interval: ClassVar[float] = 12.0  # the docs recommend 10-15 s
    platform: ClassVar[str] = ""

    def request_for(self, ids: Sequence[str]) -> Request:
        return Request("POST", f"{self.platform}/fetch", json={"ids": list(ids)})

    def detect(self, payload: Any) -> bool:
        if not isinstance(payload, Mapping) or "data" not in payload or not isinstance(payload.get("code"), str):
            return False
        data = payload["data"]
        records = data if isinstance(data, list) else [data]
        platforms = {r.get("platform") for r in records if isinstance(r, Mapping)}
        return self.platform in platforms

    def normalize(self, payload: Any, *, task_id: str | None = None) -> list[TaskRecord]:
        body = self._require_mapping(payload)
        code = body.get("code")
        data = body.get("data")
        if code not in (None, "success", 200, "200") and not data:
            message = error_message(body) or str(code)
            if code in ("task_not_exist", "not_found") and task_id:
                raise TaskNotFound(self.name, task_id, message)
            raise ProviderError(self.name, f"error {code}: {message}")
        if data is None:
            raise PayloadError(self.name, "body has no 'data' task record")
        items = data if isinstance(data, list) else [data]
        records = [self._record(item) for item in items]
        return newest_per_task(records)

    def _record(self, item: Any) -> TaskRecord:
        if not isinstance(item, Mapping):
            raise PayloadError(self.name, f"task record is {type(item).__name__}, not an object")
        task_id = text(item.get("task_id"))
        raw_status = text(item.get("status"))
        if task_id is None or raw_status is None:
            missing = "task_id" if task_id is None else "status"
            raise PayloadError(self.name, f"task record has no {missing!r}")
        status = STATUS_MAP.get(raw_status.upper(), Status.RUNNING)
        result = item.get("data")
        clip_objs = result.get("clips") if isinstance(result, Mapping) else None
        clips = tuple(
            clip
            for clip in (clip_from(c) for c in (clip_objs or []) if isinstance(c, Mapping))
            if clip is not None
        )
        error = text(item.get("fail_reason"))
        if status is Status.FAILED and error is None:
            error = "the provider reported FAILURE without a reason"
        return TaskRecord(
            source=self.name,
            task_id=task_id,
            status=status,
            provider_status=raw_status,
            progress=progress(item.get("progress")),
            error=error,
            created_at=timestamp(item.get("submit_time")) or timestamp(item.get("created_at")),
            finished_at=timestamp(item.get("finish_time")),
            updated_at=timestamp(item.get("updated_at")),
            clips=clips,
            raw=dict(item),
        )

    def error_for(self, status: int, payload: Any, ids: Sequence[str]) -> Exception:
        message = error_message(payload) or f"HTTP {status}"
        code = payload.get("code") if isinstance(payload, Mapping) else None
        if len(ids) == 1 and (status == 404 or code in ("task_not_exist", "not_found")):
            return TaskNotFound(self.name, ids[0], message)
        return ProviderError(self.name, f"HTTP {status}: {message}", status_code=status)
