"""AIMusicAPI: `GET /api/v1/producer/task/{task_id}` -> `{"code": 200, "data": [clips], "message"}`.

The body carries no task id, so the caller must supply it; the task status is derived from the
clip states. `code` other than 200 is an error (404 "记录不存在": the record does not exist).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ..errors import PayloadError, ProviderError, TaskIdRequired, TaskNotFound
from ..records import TaskRecord, clip_from, progress
from .base import BaseSource, Request, clip_states, error_message, path_segment
from .simulated import FAIL_REASON, SimCall, SimTask, UrlFor, producer_clip

STAGES = ("pending", "pending", "running", "running")  # the clips' non-final states, in order


class Aimusicapi(BaseSource):
    name: ClassVar[str] = "aimusicapi"
    provider: ClassVar[str] = "aimusicapi"
    base_url: ClassVar[str] = "https://api.aimusicapi.ai/"
    batch: ClassVar[bool] = False
    interval: ClassVar[float] = 10.0
    sim_audio: ClassVar[str] = "m4a"
    sim_demo: ClassVar[tuple[str, ...]] = ("succeeded", "succeeded")

    def request_for(self, ids: Sequence[str]) -> Request:
        (task_id,) = ids
        return Request("GET", f"api/v1/producer/task/{path_segment(self.name, task_id)}")

    def check_id(self, task_id: str) -> None:
        path_segment(self.name, task_id)

    def detect(self, payload: Any) -> bool:
        return (
            isinstance(payload, Mapping)
            and isinstance(payload.get("code"), int)
            and not isinstance(payload.get("code"), bool)
            and (isinstance(payload.get("data"), list) or payload.get("data") is None)
        )

    def normalize(self, payload: Any, *, task_id: str | None = None) -> list[TaskRecord]:
        body = self._require_mapping(payload)
        code = body.get("code")
        if code != 200:
            message = error_message(body) or "no message"
            if code == 404 and task_id:
                raise TaskNotFound(self.name, task_id, message)
            if code is None:
                raise PayloadError(self.name, "body has no 'code'")
            raise ProviderError(self.name, f"code {code}: {message}")
        if task_id is None:
            raise TaskIdRequired(self.name, "this body carries no task id; pass --task-id ID")
        data = body.get("data")
        if data is None:
            data = []
        if not isinstance(data, list):
            raise PayloadError(self.name, "'data' is not a list of clips")
        objs = [c for c in data if isinstance(c, Mapping)]
        clips = tuple(c for c in (clip_from(o) for o in objs) if c is not None)
        summary = clip_states([c.state for c in clips], objs, [progress(o.get("progress")) for o in objs],
                              id_key="clip_id")
        return [
            TaskRecord(
                source=self.name,
                task_id=task_id,
                status=summary.status,
                provider_status=summary.provider_status,
                progress=summary.progress,
                error=summary.error,
                created_at=min((c.created_at for c in clips if c.created_at), default=None),
                clips=clips,
                raw=dict(body),
            )
        ]

    def error_for(self, status: int, payload: Any, ids: Sequence[str]) -> Exception:
        code = payload.get("code") if isinstance(payload, Mapping) else None
        if (status == 404 or code == 404) and len(ids) == 1:
            return TaskNotFound(self.name, ids[0], error_message(payload) or "record does not exist")
        return super().error_for(status, payload, ids)

    # -- simulator ---------------------------------------------------------------------------

    def sim_route(self, method: str, path: list[str], query: Mapping[str, str],
                  body: Mapping[str, Any]) -> SimCall | None:
        if path[:4] != ["api", "v1", "producer", "task"] or len(path) not in (4, 5) or method != "GET":
            return None
        return SimCall(path[4:])

    def sim_single(self, record: Any) -> Any:
        return {"code": 200, "data": record, "message": "success"}  # no task id anywhere in this body

    def sim_error(self, status: int, code: str, message: str) -> Any:
        return {"code": status, "message": message}

    def sim_unauthorized(self) -> Any:
        return self.sim_error(401, "invalid_token", "Unauthorized")

    def sim_not_found(self) -> tuple[int, Any]:
        return 200, {"code": 404, "data": None, "message": "记录不存在"}

    def sim_invalid(self, call: SimCall) -> tuple[int, Any]:
        return 200, {"code": 400, "data": None, "message": "参数不正确"}

    def sim_render(self, task: SimTask, url: UrlFor, weird: str | None) -> Any:
        stage, _pct = task.stage()
        state = weird or (STAGES[stage] if stage is not None else "succeeded" if task.succeeded else "failed")
        clips = [producer_clip(clip, url, state, state == "succeeded", acedata=False) for clip in task.clips]
        for clip in clips if state == "failed" else []:
            clip["error"] = FAIL_REASON[task.outcome]
        return clips
