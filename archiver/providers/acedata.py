"""AceData Cloud: `POST /producer/tasks` with `{"id", "action": "retrieve"}` or
`{"ids": [...], "action": "retrieve_batch"}` (answer `{"items": [...], "count": n}`).

A record holds `request` and, once the upstream answered, `response`: either
`{"task_id", "data": [clips]}` or `{"success": false, "error": {"code", "message"}}`.
Clip durations arrive as strings ("135.2330158730159").
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Sequence

from ..errors import PayloadError, ProviderError
from ..records import Status, TaskRecord, clip_from, progress, text, timestamp
from .base import BaseSource, Request, clip_states, error_message, newest_per_task


class Acedata(BaseSource):
    name: ClassVar[str] = "acedata"
    provider: ClassVar[str] = "acedata"
    batch: ClassVar[bool] = True
    interval: ClassVar[float] = 10.0

    def request_for(self, ids: Sequence[str]) -> Request:
        return Request("POST", "producer/tasks", json={"ids": list(ids), "action": "retrieve_batch"})

    def detect(self, payload: Any) -> bool:
        if not isinstance(payload, Mapping):
            return False
        if isinstance(payload.get("items"), list):
            return True
        if payload.get("success") is False and isinstance(payload.get("error"), Mapping):
            return True
        return "id" in payload and ("request" in payload or "response" in payload or "api_id" in payload)

    def normalize(self, payload: Any, *, task_id: str | None = None) -> list[TaskRecord]:
        body = self._require_mapping(payload)
        if body.get("success") is False and "items" not in body and "response" not in body:
            raise ProviderError(self.name, error_message(body) or "request failed")
        if "items" in body:
            items = body["items"]
            if not isinstance(items, list):
                raise PayloadError(self.name, "'items' is not a list")
        else:
            items = [body]
        return newest_per_task([self._record(item, task_id if len(items) == 1 else None) for item in items])

    def _record(self, item: Any, task_id: str | None) -> TaskRecord:
        if not isinstance(item, Mapping):
            raise PayloadError(self.name, f"task record is {type(item).__name__}, not an object")
        if not any(key in item for key in ("id", "request", "response")):
            raise PayloadError(self.name, "task record has none of 'id', 'request', 'response'")
        response = item.get("response")
        found_id = text(item.get("id")) or (text(response.get("task_id")) if isinstance(response, Mapping) else None)
        found_id = found_id or task_id
        if found_id is None:
            raise PayloadError(self.name, "task record has no 'id'")
        request = item.get("request") if isinstance(item.get("request"), Mapping) else {}
        error = None
        clips: tuple = ()
        progress_value = None
        if not isinstance(response, Mapping):
            status, provider_status = Status.RUNNING, "no response yet"
        elif response.get("success") is False or isinstance(response.get("error"), Mapping):
            status = Status.FAILED
            error = error_message(response) or "the provider reported an error"
            code = response.get("error", {}).get("code") if isinstance(response.get("error"), Mapping) else None
            provider_status = f"error:{code}" if code else "error"
        else:
            objs = [c for c in (response.get("data") or []) if isinstance(c, Mapping)]
            built = [clip_from(c, **({} if pick_model(c) else {"model": text(request.get("model"))})) for c in objs]
            clips = tuple(c for c in built if c is not None)
            summary = clip_states([c.state for c in clips], objs,
                                  [progress(c.raw.get("progress")) for c in clips], id_key="id")
            status, provider_status, error = summary.status, summary.provider_status, summary.error
            progress_value = summary.progress
        return TaskRecord(
            source=self.name,
            task_id=found_id,
            status=status,
            provider_status=provider_status,
            progress=progress_value,
            error=error,
            created_at=timestamp(item.get("created_at")),
            finished_at=timestamp(item.get("finished_at")),
            clips=clips,
            raw=dict(item),
        )


def pick_model(clip: Mapping[str, Any]) -> Any:
    return clip.get("model") or clip.get("mv")
