"""Every documented shape through the normalizers, plus hostile input (hypothesis)."""

from __future__ import annotations

import copy
import os
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.errors import ArchiverError, ProviderError, TaskIdRequired, TaskNotFound
from archiver.providers import SOURCES, detect_source, get_source
from archiver.records import Status, duration, progress, timestamp
from conftest import load_payload

EXAMPLES = int(os.environ.get("ARCHIVER_HYPOTHESIS_EXAMPLES", "200"))  # the long run: bench/torture.py


def ccapi_record(status: str, updated: int, *, clips: list[dict[str, Any]] | None = None,
                 fail_reason: str = "", task_id: str = "task_A", platform: str = "suno") -> dict[str, Any]:
    return {
        "id": 1, "created_at": 1773385996, "updated_at": updated, "task_id": task_id, "platform": platform,
        "status": status, "fail_reason": fail_reason, "submit_time": 1773385996, "start_time": 0,
        "finish_time": 0, "progress": "20%", "data": {"clips": clips} if clips is not None else {},
    }


def test_ccapi_producer_in_progress() -> None:
    (record,) = get_source("ccapi-producer").normalize(load_payload("ccapi_producer_single.json"))
    assert record.task_id == "task_BE5vsWPK0pWHyONbGVEXqsPqD6IkcBY6"
    assert record.status is Status.RUNNING
    assert record.provider_status == "IN_PROGRESS"
    assert record.progress == 20
    assert record.finished_at is None  # finish_time 0 means "not yet"
    assert record.created_at == datetime.fromtimestamp(1773385820, timezone.utc)
    assert record.clips == ()


@pytest.mark.parametrize("reverse", [False, True])
def test_suno_batch_duplicate_newest_wins_in_either_order(reverse: bool) -> None:
    body = load_payload("ccapi_suno_batch.json")
    if reverse:
        body["data"].reverse()
    records = get_source("ccapi-suno").normalize(body)
    assert len(records) == 1
    (record,) = records
    assert record.status is Status.SUCCEEDED
    assert record.progress == 100
    (clip,) = record.clips
    assert clip.clip_id == "07c958f3-8293-4a11-96d3-240dd62bbb31"
    assert clip.title == "Soft Steps in the Sun"
    assert clip.tags == "pop, light, clean, indie pop, vocal"
    assert clip.lyrics == "[Verse 1] Quiet street..."
    assert clip.duration == pytest.approx(199.96)
    assert clip.created_at == datetime(2026, 3, 13, 7, 13, 16, 900000, tzinfo=timezone.utc)
    assert clip.audio_url.endswith(".mp3") and clip.image_url.endswith(".jpeg")
    assert clip.video_url is None


@pytest.mark.parametrize("raw,expected", [
    ("NOT_START", Status.PENDING), ("SUBMITTED", Status.PENDING), ("QUEUED", Status.PENDING),
    ("IN_PROGRESS", Status.RUNNING), ("SUCCESS", Status.SUCCEEDED), ("FAILURE", Status.FAILED),
])
def test_ccapi_status_map(raw: str, expected: Status) -> None:
    body = {"code": "success", "message": "", "data": ccapi_record(raw, 10, fail_reason="x" if raw == "FAILURE" else "")}
    (record,) = get_source("ccapi-suno").normalize(body)
    assert record.status is expected
    assert record.provider_status == raw


def test_ccapi_failure_carries_reason() -> None:
    body = {"code": "success", "data": ccapi_record("FAILURE", 10, fail_reason="content policy")}
    (record,) = get_source("ccapi-producer").normalize(body)
    assert record.status is Status.FAILED and record.error == "content policy"


def test_ccapi_unknown_status_keeps_polling() -> None:
    body = {"code": "success", "data": ccapi_record("WEIRD_STATE", 10)}
    (record,) = get_source("ccapi-suno").normalize(body)
    assert record.status is Status.RUNNING and record.provider_status == "WEIRD_STATE"


@pytest.mark.parametrize("raw,expected,error_word", [
    ("pending", Status.PENDING, None), ("ready", Status.PENDING, None), ("assigned", Status.PENDING, None),
    ("processing", Status.RUNNING, None), ("completed", Status.SUCCEEDED, None),
    ("failed", Status.FAILED, "failed"), ("timeout", Status.FAILED, "timeout"),
    ("cancelled", Status.CANCELLED, "cancelled"),
])
def test_mountsea_status_map(raw: str, expected: Status, error_word: str | None) -> None:
    body = {"taskId": "m1", "status": raw, "errorMessage": "boom", "errorCode": 7}
    if raw == "completed":
        body["result"] = {"audioId": "a1", "audioUrl": "https://x/a.mp3", "duration": 180, "title": "T"}
    (record,) = get_source("mountsea").normalize(body)
    assert record.status is expected
    if error_word:
        assert record.error.startswith(error_word) and "boom" in record.error and "7" in record.error
    else:
        assert record.error is None


def test_mountsea_completed_doc_example() -> None:
    (record,) = get_source("mountsea").normalize(load_payload("mountsea_completed.json"))
    assert record.task_id == "abc123-def456-ghi789"
    (clip,) = record.clips
    assert (clip.clip_id, clip.title, clip.duration) == ("9719e086-576a-4830-a0f2-7c9424460d6d", "Summer Vibes", 180.0)
    assert clip.audio_url == "https://cdn.example.com/audio.mp3"
    assert record.finished_at == datetime(2025, 2, 6, 10, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("name", ["acedata_single.json", "acedata_batch.json"])
def test_acedata_doc_examples(name: str) -> None:
    records = get_source("acedata").normalize(load_payload(name))
    assert len(records) == 1  # the batch example lists the same task twice
    (record,) = records
    assert record.status is Status.SUCCEEDED
    (clip,) = record.clips
    assert clip.duration == pytest.approx(135.2330158730159)
    assert clip.model == "FUZZ-2.0 Pro" and clip.seed == "1490770667"
    assert clip.lyrics.startswith("[Verse]\nWoke up with the sun in my eyes\n")
    assert clip.audio_url.endswith(".m4a")
    assert record.created_at == datetime.fromtimestamp(1767119745.524, timezone.utc)


def test_acedata_error_inside_response_is_failed() -> None:
    body = copy.deepcopy(load_payload("acedata_single.json"))
    body["response"] = {"success": False, "error": {"code": "api_error", "message": "fetch failed"}}
    (record,) = get_source("acedata").normalize(body)
    assert record.status is Status.FAILED
    assert "fetch failed" in record.error


def test_acedata_no_response_is_running() -> None:
    body = copy.deepcopy(load_payload("acedata_single.json"))
    del body["response"]
    (record,) = get_source("acedata").normalize(body)
    assert record.status is Status.RUNNING and record.clips == ()


def test_acedata_top_level_error_body() -> None:
    with pytest.raises(ProviderError, match="fetch failed"):
        get_source("acedata").normalize(load_payload("acedata_error.json"))


def test_aimusicapi_needs_task_id() -> None:
    body = load_payload("aimusicapi_task.json")
    with pytest.raises(TaskIdRequired):
        get_source("aimusicapi").normalize(body)
    (record,) = get_source("aimusicapi").normalize(body, task_id="t1")
    assert record.task_id == "t1" and record.status is Status.SUCCEEDED
    (clip,) = record.clips
    assert (clip.tags, clip.model, clip.seed, clip.duration) == (
        "emotional pop with gentle piano", "FUZZ-2.0 Pro", "3966900172", 185.02)


@pytest.mark.parametrize("states,expected", [
    (["succeeded", "succeeded"], Status.SUCCEEDED), (["succeeded", "failed"], Status.FAILED),
    (["succeeded", "running"], Status.RUNNING), ([], Status.RUNNING),
])
def test_aimusicapi_status_from_clip_states(states: list[str], expected: Status) -> None:
    clips = [{"clip_id": f"c{i}", "state": s} for i, s in enumerate(states)]
    (record,) = get_source("aimusicapi").normalize({"code": 200, "data": clips, "message": "success"}, task_id="t")
    assert record.status is expected


def test_aimusicapi_error_codes() -> None:
    with pytest.raises(TaskNotFound):
        get_source("aimusicapi").normalize({"code": 404, "data": None, "message": "记录不存在"}, task_id="t")
    with pytest.raises(ProviderError, match="500"):
        get_source("aimusicapi").normalize({"code": 500, "message": "server"}, task_id="t")


@pytest.mark.parametrize("name,expected", [
    ("ccapi_producer_single.json", "ccapi-producer"), ("ccapi_suno_batch.json", "ccapi-suno"),
    ("mountsea_completed.json", "mountsea"), ("mountsea_schema.json", "mountsea"),
    ("acedata_single.json", "acedata"), ("acedata_batch.json", "acedata"), ("aimusicapi_task.json", "aimusicapi"),
])
def test_detect_source(name: str, expected: str) -> None:
    assert detect_source(load_payload(name)).name == expected


def test_aliases_in_one_place() -> None:
    clip = {"id": "c1", "lyric": "la", "sound": "rock", "mv": "m", "duration": "12.5", "created_at": 1700000000.5}
    (record,) = get_source("aimusicapi").normalize({"code": 200, "data": [dict(clip, state="succeeded")]}, task_id="t")
    (c,) = record.clips
    assert (c.clip_id, c.lyrics, c.tags, c.model, c.duration) == ("c1", "la", "rock", "m", 12.5)
    assert c.created_at == datetime.fromtimestamp(1700000000.5, timezone.utc)


@pytest.mark.parametrize("value,expected", [
    (None, None), ("", None), (0, None), (1700000000, datetime.fromtimestamp(1700000000, timezone.utc)),
    (1700000000123, datetime.fromtimestamp(1700000000.123, timezone.utc)),
    ("2026-03-13T07:13:16.900Z", datetime(2026, 3, 13, 7, 13, 16, 900000, tzinfo=timezone.utc)),
    ("2025-12-30T18:36:00.994141Z", datetime(2025, 12, 30, 18, 36, 0, 994141, tzinfo=timezone.utc)),
    ("2026-01-01T02:00:00+02:00", datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc)), ("garbage", None),
])
def test_timestamp(value: Any, expected: datetime | None) -> None:
    assert timestamp(value) == expected


@pytest.mark.parametrize("value,expected", [
    (None, None), (180, 180.0), ("135.2330158730159", 135.2330158730159), ("x", None), (-1, None), ("nan", None),
])
def test_duration(value: Any, expected: float | None) -> None:
    assert duration(value) == expected


@pytest.mark.parametrize("value,expected", [("20%", 20), ("100%", 100), (55, 55), ("250%", 100), ("?", None)])
def test_progress(value: Any, expected: int | None) -> None:
    assert progress(value) == expected


@pytest.mark.parametrize("source", list(SOURCES))
@pytest.mark.parametrize("body", [None, [], "text", 42, {}, {"data": "nope"}, {"code": "success", "data": [1, 2]}])
def test_wrong_shape_is_an_archiver_error(source: str, body: Any) -> None:
    with pytest.raises(ArchiverError):
        get_source(source).normalize(body, task_id="t")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)
clip_keys = st.sampled_from(["clip_id", "id", "audioId", "title", "lyrics", "lyric", "tags", "sound", "model", "mv",
                             "duration", "created_at", "audio_url", "image_url", "state", "seed"])
clip_objects = st.dictionaries(clip_keys, json_values, max_size=10)


def _shaped(source: str, clip: dict[str, Any], status: Any) -> Any:
    if source.startswith("ccapi"):
        return {"code": "success", "data": {"task_id": "t", "status": status, "platform": source[6:],
                                            "progress": status, "updated_at": status, "data": {"clips": [clip]}}}
    if source == "mountsea":
        return {"taskId": "t", "status": status, "result": clip, "createdAt": status}
    if source == "acedata":
        return {"id": "t", "request": {}, "response": {"data": [clip]}, "created_at": status}
    return {"code": 200, "data": [clip]}


@settings(max_examples=EXAMPLES, deadline=None)
@given(source=st.sampled_from(list(SOURCES)), clip=clip_objects, status=json_values)
def test_normalizers_never_crash(source: str, clip: dict[str, Any], status: Any) -> None:
    """Arbitrary field values: either records with sane types, or an ArchiverError."""
    try:
        records = get_source(source).normalize(_shaped(source, clip, status), task_id="t")
    except ArchiverError:
        return
    for record in records:
        assert isinstance(record.status, Status)
        assert record.progress is None or 0 <= record.progress <= 100
        for c in record.clips:
            assert isinstance(c.clip_id, str) and c.clip_id
            assert c.duration is None or (isinstance(c.duration, float) and c.duration >= 0)
            assert c.created_at is None or c.created_at.tzinfo is not None
            assert c.title is None or isinstance(c.title, str)


@settings(max_examples=EXAMPLES, deadline=None)
@given(body=json_values)
def test_arbitrary_json_never_crashes(body: Any) -> None:
    for source in SOURCES.values():
        try:
            source.normalize(body, task_id="t")
        except ArchiverError:
            pass
