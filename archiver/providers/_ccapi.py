"""What the two CCAPI platforms (suno, producer) share: one envelope, one task record shape.

Body: `{"code": "success", "message": "", "data": {record}}` or, from the batch endpoint,
`"data": [records]`. A record carries `status` (NOT_START ... SUCCESS/FAILURE), `progress` "20%",
epoch-second times where 0 means "not yet", and music results in `data.clips[]`.
The batch answer may list a stale copy of a task besides the fresh one; the simulator does so too.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import PayloadError, ProviderError, TaskNotFound
from ..records import Status, TaskRecord, clip_from, progress, text, timestamp
from .base import BaseSource, Request, error_message, newest_per_task
from .simulated import FAIL_REASON, STEP_SECONDS, SimCall, SimClip, SimTask, UrlFor, iso

if TYPE_CHECKING:
    import random

STAGES = ("NOT_START", "SUBMITTED", "QUEUED", "IN_PROGRESS")  # the non-final statuses, in order
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
    base_url: ClassVar[str] = "https://api.ccapi.ai/"
    batch: ClassVar[bool] = True
    batch_size: ClassVar[int] = 50
    interval: ClassVar[float] = 12.0  # the docs recommend 10-15 s
    platform: ClassVar[str] = ""
    sim_demo: ClassVar[tuple[str, ...]] = ("succeeded", "succeeded")

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

    # -- simulator ---------------------------------------------------------------------------

    def sim_task_id(self, rng: random.Random) -> str:
        alnum = string.ascii_letters + string.digits
        return "task_" + "".join(rng.choice(alnum) for _ in range(32))

    def sim_route(self, method: str, path: list[str], query: Mapping[str, str],
                  body: Mapping[str, Any]) -> SimCall | None:
        if path[:2] != [self.platform, "fetch"] or (len(path), method) not in ((3, "GET"), (2, "POST")):
            return None
        single = len(path) == 3
        return SimCall(path[2:] if single else body.get("ids"), single,
                       ("invalid_request", "ids must be a list of task ids"))

    def sim_single(self, record: Any) -> Any:
        return {"code": "success", "message": "", "data": record}

    def sim_batch(self, records: list[Any]) -> Any:
        return {"code": "success", "message": "", "data": records}

    def sim_error(self, status: int, code: str, message: str) -> Any:
        return {"code": code, "message": message, "data": None}

    def sim_not_found(self) -> tuple[int, Any]:
        return 404, self.sim_error(404, "task_not_exist", "task not found")

    def sim_render(self, task: SimTask, url: UrlFor, weird: str | None) -> Any:
        stage, pct = task.stage()
        ok, platform = task.succeeded, self.platform
        status = weird or (STAGES[stage] if stage is not None else "SUCCESS" if ok else "FAILURE")
        record: dict[str, Any] = {
            "id": task.number, "created_at": task.created, "updated_at": task.updated_at,
            "task_id": task.task_id, "platform": platform, "user_id": 3, "group": f"{platform}-A",
            "channel_id": 27 if platform == "suno" else 28,
            "quota": 40000 if platform == "suno" else 30000, "action": "MUSIC", "status": status,
            "fail_reason": "" if ok or stage is not None else FAIL_REASON[task.outcome],
            "submit_time": task.created,
            "start_time": task.created + STEP_SECONDS if stage is None or stage >= 3 else 0,
            "finish_time": task.finished_at if stage is None else 0, "progress": f"{pct}%",
            "properties": {"input": "", "upstream_model_name": f"{platform}_music",
                           "origin_model_name": f"{platform}_music"},
            "data": {"progress": f"{pct}%", "status": status, "task_id": task.aux["upstream"]},
        }
        if ok and not weird:
            if task.clips:
                record["result_url"] = url(task.clips[0], task.clips[0].audio_ext)
            record["data"] = {"clips": [self._sim_clip(clip, url) for clip in task.clips]}
        return record

    def _sim_clip(self, clip: SimClip, url: UrlFor) -> dict[str, Any]:
        body: dict[str, Any] = {
            "clip_id": clip.clip_id, "state": "completed", "title": clip.title, "tags": clip.tags,
            "lyrics": clip.lyrics, "image_url": url(clip, clip.image_ext),
            "audio_url": url(clip, clip.audio_ext), "video_url": None,
            "created_at": iso(clip.created), "duration": clip.duration, "negative_tags": None,
            "style_weight": None, "weirdness_constraint": None, "audio_weight": None,
        }
        if self.platform == "producer":
            body["model"] = "producer_music"
        return body

    def sim_stale(self, fresh: Any, task: SimTask) -> Any | None:
        """The duplicate the docs show: the same task, IN_PROGRESS, older updated_at."""
        if not task.duplicate_stale:
            return None
        return fresh | {
            "updated_at": max(task.created, task.updated_at - STEP_SECONDS // 2) - 1,
            "status": "IN_PROGRESS", "fail_reason": "", "finish_time": 0, "progress": "20%",
            "start_time": task.created + STEP_SECONDS,
            "data": {"progress": "20%", "status": "IN_PROGRESS", "task_id": task.aux["upstream"]},
        }
