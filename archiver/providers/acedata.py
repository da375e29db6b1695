"""AceData Cloud: `POST /producer/tasks` with `{"id", "action": "retrieve"}` or
`{"ids": [...], "action": "retrieve_batch"}` (answer `{"items": [...], "count": n}`).

A record holds `request` and, once the upstream answered, `response`: either
`{"task_id", "data": [clips]}` or `{"success": false, "error": {"code", "message"}}`.
Clip durations arrive as strings ("135.2330158730159").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ..errors import PayloadError, ProviderError
from ..records import Status, TaskRecord, clip_from, progress, text, timestamp
from .base import BaseSource, Request, clip_states, error_message, newest_per_task
from .simulated import SimCall, SimTask, UrlFor, producer_clip


class Acedata(BaseSource):
    name: ClassVar[str] = "acedata"
    provider: ClassVar[str] = "acedata"
    base_url: ClassVar[str] = "https://api.acedata.cloud/"
    batch: ClassVar[bool] = True
    batch_size: ClassVar[int] = 50
    interval: ClassVar[float] = 10.0
    sim_audio: ClassVar[str] = "m4a"
    sim_demo: ClassVar[tuple[str, ...]] = ("succeeded", "succeeded")

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

    # -- simulator ---------------------------------------------------------------------------

    def sim_route(self, method: str, path: list[str], query: Mapping[str, str],
                  body: Mapping[str, Any]) -> SimCall | None:
        if path != ["producer", "tasks"] or method != "POST":
            return None
        action = body.get("action")
        single = action != "retrieve_batch"
        ids = [body.get("id")] if action == "retrieve" else None if single else body.get("ids")
        if action not in ("retrieve", "retrieve_batch"):
            return SimCall(ids, single, ("api_not_implemented", f"unknown action {action!r}"))
        return SimCall(ids, single)

    def sim_batch(self, records: list[Any]) -> Any:
        return {"items": records, "count": len(records)}

    def sim_error(self, status: int, code: str, message: str) -> Any:
        import uuid  # the simulator's only; not on every command's start-up

        return {"success": False, "error": {"code": code, "message": message}, "trace_id": str(uuid.uuid4())}

    def sim_unauthorized(self) -> Any:
        return self.sim_error(401, "invalid_token", "invalid or missing token")

    def sim_render(self, task: SimTask, url: UrlFor, weird: str | None) -> Any:
        stage, _pct = task.stage()
        aux = task.aux
        fraction = int(aux["_id"][:3], 16) / 4096
        record: dict[str, Any] = {
            "_id": aux["_id"], "id": task.task_id, "api_id": aux["api_id"],
            "application_id": aux["application_id"], "created_at": task.created + fraction,
            "credential_id": aux["credential_id"],
            "request": {"action": "generate", "model": "FUZZ-2.0 Pro", "instrumental": False,
                        "lyric": task.clips[0].lyrics if task.clips else "", "custom": True},
            "trace_id": aux["trace"], "type": "audios", "user_id": aux["user_id"],
        }
        if weird:
            record["response"] = {"task_id": task.task_id, "data": [
                producer_clip(clip, url, weird, False, acedata=True) for clip in task.clips]}
        elif stage == 3:  # started: a response exists but has no data yet
            record["response"] = {"task_id": task.task_id}
        elif stage is None:
            if task.succeeded:
                record["response"] = {"task_id": task.task_id, "data": [
                    producer_clip(clip, url, "succeeded", True, acedata=True) for clip in task.clips]}
            else:
                record["response"] = {"success": False,
                                      "error": {"code": "api_error", "message": "fetch failed"}}
            finished = task.finished_at + fraction / 2
            record["duration"] = finished - record["created_at"]
            record["finished_at"] = finished
        return record


def pick_model(clip: Mapping[str, Any]) -> Any:
    return clip.get("model") or clip.get("mv")
