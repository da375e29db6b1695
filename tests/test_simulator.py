"""The simulator answers like the providers' docs say, over real HTTP, and misbehaves on request."""

from __future__ import annotations

import email.utils
import io
import json
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import mutagen
import pytest

from archiver.simulator import Simulator

AUTH = {"Authorization": "Bearer sim-token"}
SUNO_CLIP_KEYS = {"clip_id", "state", "title", "tags", "lyrics", "image_url", "audio_url",
                  "video_url", "created_at", "duration", "negative_tags", "style_weight",
                  "weirdness_constraint", "audio_weight"}
ACEDATA_CLIP_KEYS = {"id", "title", "image_url", "lyric", "audio_url", "video_url", "image_id",
                     "topic", "seed", "sound", "created_at", "model", "progress", "state",
                     "duration"}
AIMUSICAPI_CLIP_KEYS = {"clip_id", "title", "sound", "lyrics", "image_url", "audio_url",
                        "video_url", "created_at", "mv", "seed", "duration", "state"}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(seed=7) as simulator:
        yield simulator


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(headers=AUTH, timeout=5) as http:
        yield http


def poll(sim: Simulator, http: httpx.Client, source: str, task_id: str,
         headers: dict[str, str] | None = None) -> httpx.Response:
    """One documented single-task fetch for `source`."""
    if source.startswith("ccapi"):
        platform = source.split("-")[1]
        return http.get(f"{sim.provider_url('ccapi')}{platform}/fetch/{task_id}", headers=headers)
    if source == "mountsea":
        return http.get(sim.provider_url("mountsea") + "producer/tasks",
                        params={"taskId": task_id}, headers=headers)
    if source == "acedata":
        return http.post(sim.provider_url("acedata") + "producer/tasks",
                         json={"id": task_id, "action": "retrieve"}, headers=headers)
    return http.get(f"{sim.provider_url('aimusicapi')}api/v1/producer/task/{task_id}",
                    headers=headers)


def real_length(data: bytes) -> float:
    info = mutagen.File(io.BytesIO(data))
    assert info is not None
    return float(info.info.length)


def test_ccapi_suno_walks_the_documented_statuses(sim: Simulator, client: httpx.Client) -> None:
    task_id = sim.add_task("ccapi-suno", steps=4)
    assert re.fullmatch(r"task_[A-Za-z0-9]{32}", task_id)
    records = [poll(sim, client, "ccapi-suno", task_id).json() for _ in range(6)]
    assert all(r["code"] == "success" and r["message"] == "" for r in records)
    data = [r["data"] for r in records]
    assert [d["status"] for d in data] == ["NOT_START", "SUBMITTED", "QUEUED", "IN_PROGRESS",
                                           "SUCCESS", "SUCCESS"]
    assert all(re.fullmatch(r"\d{1,3}%", d["progress"]) for d in data)
    assert data[3]["data"]["status"] == "IN_PROGRESS" and data[4]["progress"] == "100%"
    updated = [d["updated_at"] for d in data]
    assert updated == sorted(set(updated)) and all(isinstance(u, int) for u in updated)
    done = data[4]
    assert done["task_id"] == task_id and done["platform"] == "suno" and done["action"] == "MUSIC"
    assert done["finish_time"] > done["start_time"] > 0 and done["fail_reason"] == ""
    clips = done["data"]["clips"]
    assert len(clips) == 2 and all(set(c) == SUNO_CLIP_KEYS for c in clips)
    for clip in clips:
        assert clip["created_at"].endswith("Z") and "[Verse]" in clip["lyrics"]
        assert clip["tags"].count(",") >= 2 and clip["video_url"] is None
        audio = client.get(clip["audio_url"])
        assert audio.headers["content-type"] == "audio/mpeg"
        assert audio.content == sim.media_bytes(clip["audio_url"])
        assert clip["duration"] == pytest.approx(real_length(audio.content), abs=1e-9)
        image = client.get(clip["image_url"])
        assert image.headers["content-type"] == "image/jpeg" and image.content[:2] == b"\xff\xd8"


def test_ccapi_producer_batch_with_double_slash_and_failure(sim: Simulator,
                                                            client: httpx.Client) -> None:
    good = sim.add_task("ccapi-producer", steps=0, clips=3)
    bad = sim.add_task("ccapi-producer", steps=1, outcome="failed")
    url = f"{sim.base_url}/ccapi//producer/fetch"
    first = client.post(url, json={"ids": [good, "task_unknown", bad]}).json()
    assert [r["task_id"] for r in first["data"]] == [good, bad]
    assert first["data"][0]["status"] == "SUCCESS" and first["data"][1]["status"] != "FAILURE"
    assert len(first["data"][0]["data"]["clips"]) == 3
    second = client.post(url, json={"ids": [bad]}).json()["data"][0]
    assert second["status"] == "FAILURE" and second["fail_reason"]
    single = client.get(f"{sim.base_url}/ccapi//producer/fetch/{good}").json()["data"]
    assert single["platform"] == "producer" and single["data"]["clips"][0]["audio_url"]
    # A producer task is not visible on the suno platform.
    assert poll(sim, client, "ccapi-suno", good).status_code == 404
    assert client.post(url, content=b"{nope").status_code == 400


def test_ccapi_duplicate_stale_alternates_position(sim: Simulator, client: httpx.Client) -> None:
    task_id = sim.add_task("ccapi-suno", steps=0, duplicate_stale=True)
    url = sim.provider_url("ccapi") + "suno/fetch"
    orders = []
    for _ in range(2):
        data = client.post(url, json={"ids": [task_id]}).json()["data"]
        assert [r["task_id"] for r in data] == [task_id, task_id]
        fresh = max(data, key=lambda r: r["updated_at"])
        stale = min(data, key=lambda r: r["updated_at"])
        assert fresh["updated_at"] > stale["updated_at"]
        assert fresh["status"] == "SUCCESS" and stale["status"] == "IN_PROGRESS"
        assert "clips" not in stale["data"]
        orders.append(data.index(fresh))
    assert orders == [0, 1]


def test_mountsea_lifecycle_and_outcomes(sim: Simulator, client: httpx.Client) -> None:
    task_id = sim.add_task("mountsea", steps=4, clips=3)
    bodies = [poll(sim, client, "mountsea", task_id).json() for _ in range(5)]
    assert [b["status"] for b in bodies] == ["pending", "ready", "assigned", "processing",
                                             "completed"]
    assert all("result" not in b for b in bodies[:4])
    done = bodies[-1]
    assert done["taskId"] == task_id and done["finishedAt"].endswith("Z") and done["traceId"]
    assert set(done["result"]) == {"audioId", "audioUrl", "duration", "title"}
    assert len(sim._tasks[("mountsea", task_id)].clips) == 1
    audio = client.get(done["result"]["audioUrl"]).content
    assert done["result"]["duration"] == pytest.approx(real_length(audio), abs=1e-9)
    for outcome, status in [("failed", "failed"), ("timeout", "timeout"),
                            ("cancelled", "cancelled")]:
        other = sim.add_task("mountsea", steps=0, outcome=outcome)
        body = poll(sim, client, "mountsea", other).json()
        assert body["status"] == status and "result" not in body
        if outcome != "cancelled":
            assert body["errorMessage"] and isinstance(body["errorCode"], int)


def test_acedata_shapes(sim: Simulator, client: httpx.Client) -> None:
    task_id = sim.add_task("acedata", steps=2)
    first, second, third = (poll(sim, client, "acedata", task_id).json() for _ in range(3))
    assert "response" not in first and first["request"]["lyric"]
    assert "data" not in second.get("response", {})
    response = third["response"]
    assert response["task_id"] == task_id and len(response["data"]) == 2
    assert isinstance(third["created_at"], float) and third["finished_at"] > third["created_at"]
    for clip in response["data"]:
        assert set(clip) == ACEDATA_CLIP_KEYS
        assert clip["model"] == "FUZZ-2.0 Pro" and clip["progress"] == "100%"
        assert clip["state"] == "succeeded" and isinstance(clip["seed"], str)
        assert isinstance(clip["duration"], str) and clip["video_url"] is None
        audio = client.get(clip["audio_url"])
        assert audio.headers["content-type"] == "audio/mp4" and clip["audio_url"].endswith(".m4a")
        assert float(clip["duration"]) == pytest.approx(real_length(audio.content), abs=1e-9)
    failed = sim.add_task("acedata", steps=0, outcome="failed")
    batch = client.post(sim.provider_url("acedata") + "producer/tasks",
                        json={"ids": [task_id, "nope", failed], "action": "retrieve_batch"}).json()
    assert batch["count"] == 2 and [i["id"] for i in batch["items"]] == [task_id, failed]
    assert batch["items"][1]["response"] == {
        "success": False, "error": {"code": "api_error", "message": "fetch failed"}}
    wrong = client.post(sim.provider_url("acedata") + "producer/tasks", json={"action": "x"})
    assert wrong.status_code == 400 and wrong.json()["success"] is False


def test_aimusicapi_shapes(sim: Simulator, client: httpx.Client) -> None:
    task_id = sim.add_task("aimusicapi", steps=1, lyrics="[Verse]\nla la\n[Chorus]\nna na")
    running = poll(sim, client, "aimusicapi", task_id).json()
    assert running["code"] == 200 and running["message"] == "success"
    assert all(c["state"] in ("pending", "running") and "audio_url" not in c
               for c in running["data"])
    done = poll(sim, client, "aimusicapi", task_id)
    body = done.json()
    assert set(body) == {"code", "data", "message"} and task_id not in done.text
    for clip in body["data"]:
        assert set(clip) == AIMUSICAPI_CLIP_KEYS and clip["state"] == "succeeded"
        assert clip["lyrics"] == "[Verse]\nla la\n[Chorus]\nna na" and clip["mv"]
        assert isinstance(clip["duration"], float) and clip["audio_url"].endswith(".m4a")
    failed = sim.add_task("aimusicapi", steps=0, outcome="failed")
    clips = poll(sim, client, "aimusicapi", failed).json()["data"]
    assert all(c["state"] == "failed" and c["error"] for c in clips)
    missing = client.get(sim.provider_url("aimusicapi") + "api/v1/producer/task/")
    assert missing.status_code == 200 and missing.json()["code"] == 400


def test_token_check_shapes(client: httpx.Client) -> None:
    with Simulator(tokens={"acedata": "ace-secret"}) as sim:
        ids = {s: sim.add_task(s) for s in ("ccapi-suno", "mountsea", "acedata", "aimusicapi")}
        expected: dict[str, Any] = {
            "ccapi-suno": {"code": "unauthorized", "message": "invalid token", "data": None},
            "mountsea": {"statusCode": 401, "message": "Unauthorized"},
            "aimusicapi": {"code": 401, "message": "Unauthorized"},
        }
        for source, task_id in ids.items():
            for headers in ({"Authorization": "Bearer wrong"}, {"Authorization": ""}):
                response = poll(sim, client, source, task_id, headers=headers)
                assert response.status_code == 401
                if source == "acedata":
                    body = response.json()
                    assert body["success"] is False and body["trace_id"]
                    assert body["error"] == {"code": "invalid_token",
                                             "message": "invalid or missing token"}
                else:
                    assert response.json() == expected[source]
        # the default token is rejected where a custom one is configured
        assert poll(sim, client, "acedata", ids["acedata"]).status_code == 401
        ok = poll(sim, client, "acedata", ids["acedata"],
                  headers={"Authorization": "Bearer ace-secret"})
        assert ok.status_code == 200
        assert sim.env()["ARCHIVER_ACEDATA_TOKEN"] == "ace-secret"
        assert sim.env()["ARCHIVER_CCAPI_BASE_URL"] == sim.provider_url("ccapi")
        assert sim.provider_url("ccapi-producer").endswith("/ccapi/")


def test_unknown_ids(sim: Simulator, client: httpx.Client) -> None:
    ccapi = poll(sim, client, "ccapi-suno", "task_missing")
    assert ccapi.status_code == 404
    assert ccapi.json() == {"code": "task_not_exist", "message": "task not found", "data": None}
    mountsea = poll(sim, client, "mountsea", "missing")
    assert (mountsea.status_code, mountsea.json()) == (404, {"statusCode": 404,
                                                             "message": "Task not found"})
    acedata = poll(sim, client, "acedata", "missing")
    assert acedata.status_code == 404 and acedata.json()["error"]["code"] == "not_found"
    aimusicapi = poll(sim, client, "aimusicapi", "missing")
    assert aimusicapi.status_code == 200
    assert aimusicapi.json() == {"code": 404, "data": None, "message": "记录不存在"}
    batch = client.post(sim.provider_url("ccapi") + "suno/fetch", json={"ids": ["a", "b"]})
    assert batch.json() == {"code": "success", "message": "", "data": []}
    assert client.get(sim.base_url + "/nowhere").status_code == 404


def audio_url_of(sim: Simulator, client: httpx.Client, task_id: str) -> str:
    data = poll(sim, client, "ccapi-suno", task_id).json()["data"]
    return str(data["data"]["clips"][0]["audio_url"])


def test_range_requests(sim: Simulator, client: httpx.Client) -> None:
    url = audio_url_of(sim, client, sim.add_task("ccapi-suno", steps=0))
    whole = sim.media_bytes(url)
    size = len(whole)
    part = client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{size}"
    assert part.headers["content-length"] == "100" and part.headers["accept-ranges"] == "bytes"
    tail = client.get(url, headers={"Range": "bytes=1000-"})
    assert tail.status_code == 206 and tail.content == whole[1000:]
    suffix = client.get(url, headers={"Range": "bytes=-10"})
    assert suffix.content == whole[-10:]
    assert client.get(url, headers={"Range": f"bytes={size}-"}).status_code == 416
    head = client.head(url)
    assert head.status_code == 200 and head.headers["content-length"] == str(size)
    assert head.content == b""
    with Simulator(range_support=False) as plain:
        url = audio_url_of(plain, client, plain.add_task("ccapi-suno", steps=0))
        full = client.get(url, headers={"Range": "bytes=10-19"})
        assert full.status_code == 200 and full.content == plain.media_bytes(url)


def test_rate_limits_and_server_errors(sim: Simulator, client: httpx.Client) -> None:
    task_id = sim.add_task("mountsea", steps=0)
    sim.inject("429", retry_after=3)
    limited = poll(sim, client, "mountsea", task_id)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    sim.inject("429", retry_after="date", provider="mountsea")
    dated = poll(sim, client, "mountsea", task_id)
    assert dated.status_code == 429
    assert email.utils.parsedate_to_datetime(dated.headers["retry-after"]) is not None
    for kind in ("500", "502", "503"):
        sim.inject(kind)
        assert poll(sim, client, "mountsea", task_id).status_code == int(kind)
    sim.inject("500", provider="acedata", times=-1)  # other providers are unaffected
    body = poll(sim, client, "mountsea", task_id).json()
    assert body["status"] == "completed"
    assert [r.fault for r in sim.requests] == ["429", "429", "500", "502", "503", None]
    assert sim.count("api", "mountsea") == 6 and sim.count("media") == 0
    sim.clear_faults()
    acedata = sim.add_task("acedata")
    assert poll(sim, client, "acedata", acedata).status_code == 200


def test_reset_malformed_html_and_unknown_status(sim: Simulator, client: httpx.Client) -> None:
    task_id = sim.add_task("ccapi-suno", steps=1)
    sim.inject("reset")
    with pytest.raises(httpx.TransportError):
        poll(sim, client, "ccapi-suno", task_id)
    sim.inject("malformed")
    broken = poll(sim, client, "ccapi-suno", task_id)
    assert broken.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        broken.json()
    sim.inject("html200")
    html = poll(sim, client, "ccapi-suno", task_id)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    sim.inject("unknown_status", times=2)
    weird = [poll(sim, client, "ccapi-suno", task_id).json()["data"] for _ in range(2)]
    assert [w["status"] for w in weird] == ["WEIRD_STATE", "WEIRD_STATE"]
    # none of the faulted polls advanced the task: it still needs its two polls
    assert poll(sim, client, "ccapi-suno", task_id).json()["data"]["status"] == "IN_PROGRESS"
    assert poll(sim, client, "ccapi-suno", task_id).json()["data"]["status"] == "SUCCESS"
    assert sim.requests[0].status is None and sim.requests[0].fault == "reset"


def test_stall_on_api_and_media(sim: Simulator, client: httpx.Client) -> None:
    task_id = sim.add_task("ccapi-suno", steps=0)
    sim.inject("stall", delay=0.3)
    started = time.monotonic()
    url = audio_url_of(sim, client, task_id)
    assert time.monotonic() - started >= 0.3
    sim.inject("stall", target="media", delay=1.0)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(url, timeout=httpx.Timeout(5, read=0.2))
    sim.inject("stall", target="media", delay=0.2)
    assert client.get(url).content == sim.media_bytes(url)


def _first_second(url: str) -> tuple[int, bytes]:
    """Status and the body bytes that arrive in about one second (reads time out after 0.5 s)."""
    got = b""
    with httpx.stream("GET", url, headers=AUTH, timeout=httpx.Timeout(5, read=0.5)) as response:
        started = time.monotonic()
        for chunk in response.iter_raw():
            got += chunk
            if time.monotonic() - started > 1.0:
                break
    return response.status_code, got


def test_trickle_on_api_and_media(sim: Simulator, client: httpx.Client) -> None:
    """The normal answer, a byte every `delay` s: no read ever times out, the body crawls."""
    task_id = sim.add_task("ccapi-suno", steps=0)
    url = audio_url_of(sim, client, task_id)
    sim.inject("trickle", delay=0.1)
    status, api = _first_second(f"{sim.provider_url('ccapi')}suno/fetch/{task_id}")
    assert status == 200 and api.startswith(b'{"code"')
    assert 3 <= len(api) <= 20, api  # about ten bytes in a second
    sim.inject("trickle", target="media", delay=0.1)
    status, audio = _first_second(url)
    assert status == 200 and 3 <= len(audio) <= 20, len(audio)
    assert sim.media_bytes(url).startswith(audio)
    assert [r.fault for r in sim.requests[-2:]] == ["trickle", "trickle"]
    assert client.get(url).content == sim.media_bytes(url)  # a fault with times=1 is used up


@pytest.mark.parametrize("kind", ["drop", "truncate", "no_length"])
def test_broken_media_bodies(sim: Simulator, client: httpx.Client, kind: str) -> None:
    url = audio_url_of(sim, client, sim.add_task("ccapi-suno", steps=0))
    whole = sim.media_bytes(url)
    sim.inject(kind)
    received, error = b"", None
    try:
        with client.stream("GET", url) as response:
            for block in response.iter_raw():
                received += block
    except httpx.TransportError as exc:
        error = exc
    assert received == whole[: len(whole) // 2]  # exactly the first half arrives
    if kind == "no_length":  # looks complete to a client that trusts the close
        assert error is None and "content-length" not in response.headers
    else:
        expected = httpx.ReadError if kind == "drop" else httpx.RemoteProtocolError
        assert isinstance(error, expected) and response.headers["content-length"] == str(len(whole))
    assert client.get(url).content == whole  # a later request is served normally
    assert [r.fault for r in sim.requests if r.target == "media"] == [kind, None]


def test_expired_link_heals_on_repoll(sim: Simulator, client: httpx.Client) -> None:
    task_id = sim.add_task("ccapi-suno", steps=0, clips=1)
    old = audio_url_of(sim, client, task_id)
    sim.inject("expire")
    assert client.get(old).status_code == 403
    assert client.get(old).status_code == 403  # forever
    new = audio_url_of(sim, client, task_id)
    assert new != old
    response = client.get(new)
    assert response.status_code == 200 and response.content == sim.media_bytes(old)


def test_expire_without_clip_id_invalidates_every_clip(sim: Simulator,
                                                       client: httpx.Client) -> None:
    first = sim.add_task("ccapi-suno", steps=0, clips=2)
    other = sim.add_task("acedata", steps=0, clips=1)
    clips = poll(sim, client, "ccapi-suno", first).json()["data"]["data"]["clips"]
    ace = poll(sim, client, "acedata", other).json()["response"]["data"][0]
    sim.inject("expire", provider="ccapi")
    assert client.get(clips[0]["audio_url"]).status_code == 403
    assert client.get(clips[1]["image_url"]).status_code == 403  # the whole batch expired
    assert client.get(ace["audio_url"]).status_code == 200  # another provider's links live on
    fresh = poll(sim, client, "ccapi-suno", first).json()["data"]["data"]["clips"]
    assert all(client.get(c["audio_url"]).status_code == 200 for c in fresh)


def test_gone_never_heals(sim: Simulator, client: httpx.Client) -> None:
    task_id = sim.add_task("ccapi-suno", steps=0, clips=2)
    clips = poll(sim, client, "ccapi-suno", task_id).json()["data"]["data"]["clips"]
    sim.inject("gone", clip_id=clips[0]["clip_id"])
    assert client.get(clips[1]["audio_url"]).status_code == 200  # other clip untouched
    assert client.get(clips[0]["audio_url"]).status_code == 404
    again = poll(sim, client, "ccapi-suno", task_id).json()["data"]["data"]["clips"][0]
    assert client.get(again["audio_url"]).status_code == 404
    assert client.get(again["image_url"]).status_code == 404


def test_media_faults_can_answer_429(sim: Simulator, client: httpx.Client) -> None:
    url = audio_url_of(sim, client, sim.add_task("ccapi-suno", steps=0))
    sim.inject("429", target="media", retry_after=0.5)
    limited = client.get(url)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "0.5"
    sim.inject("html200", target="media")
    assert client.get(url).headers["content-type"].startswith("text/html")
    assert client.get(url).headers["content-type"] == "audio/mpeg"


def test_padded_mp3_is_valid_and_duration_matches(sim: Simulator, client: httpx.Client,
                                                  tmp_path: Any) -> None:
    task_id = sim.add_task("ccapi-suno", steps=0, clips=1, audio_bytes=3_000_000)
    clip = poll(sim, client, "ccapi-suno", task_id).json()["data"]["data"]["clips"][0]
    data = client.get(clip["audio_url"]).content
    assert abs(len(data) - 3_000_000) < 30_000
    assert clip["duration"] == pytest.approx(real_length(data), abs=1e-6)
    assert clip["duration"] > 100
    if shutil.which("ffmpeg"):
        path = tmp_path / "padded.mp3"
        path.write_bytes(data)
        run = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                             capture_output=True, timeout=30)
        assert run.returncode == 0 and not run.stderr
    # A gigabyte file is only ever generated on the fly.
    huge = sim.add_task("mountsea", steps=0, audio_bytes=1 << 30)
    url = poll(sim, client, "mountsea", huge).json()["result"]["audioUrl"]
    size = int(client.head(url).headers["content-length"])
    assert abs(size - (1 << 30)) < 30_000
    tail = client.get(url, headers={"Range": f"bytes={size - 1000}-"})
    assert tail.status_code == 206 and len(tail.content) == 1000


def test_duration_lie_and_titles(sim: Simulator, client: httpx.Client) -> None:
    hostile = ["../../etc/passwd", "CON", "Ünïcødé / slash: *?"]
    task_id = sim.add_task("aimusicapi", steps=0, clips=3, titles=hostile, duration_lie=999.5)
    clips = poll(sim, client, "aimusicapi", task_id).json()["data"]
    assert [c["title"] for c in clips] == hostile
    assert all(c["duration"] == 999.5 for c in clips)


def test_deterministic_for_a_seed() -> None:
    def snapshot(seed: int) -> list[Any]:
        sim = Simulator(seed=seed)
        ids = [sim.add_task(s) for s in ("ccapi-suno", "acedata", "mountsea")]
        return [ids] + [(c.title, c.lyrics, c.seed, c.clip_id) for c in sim._clips.values()]

    assert snapshot(3) == snapshot(3)
    assert snapshot(3) != snapshot(4)


def test_garbage_requests_get_400_and_server_survives(sim: Simulator,
                                                      client: httpx.Client) -> None:
    host, port = sim.host, sim.port
    with socket.create_connection((host, port), timeout=5) as raw:
        raw.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        answer = raw.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400") and b"application/json" in answer
    with socket.create_connection((host, port), timeout=5) as raw:
        raw.sendall(b"POST /acedata/producer/tasks HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Length: abc\r\n\r\n")
        assert raw.recv(4096).startswith(b"HTTP/1.1 400")
    task_id = sim.add_task("mountsea", steps=0)
    assert poll(sim, client, "mountsea", task_id).status_code == 200


def test_clients_hanging_up_print_nothing(sim: Simulator, client: httpx.Client,
                                          capfd: pytest.CaptureFixture[str]) -> None:
    task_id = sim.add_task("ccapi-suno", steps=0, clips=1, audio_bytes=20_000_000)
    path = audio_url_of(sim, client, task_id).removeprefix(sim.base_url)
    for request in (f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), b"GET / HTTP/1.1\r\n"):
        raw = socket.create_connection((sim.host, sim.port), timeout=5)
        raw.sendall(request)
        if b"/media/" in request:
            raw.recv(1024)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.close()  # an RST while the server writes, or while it reads the request
    time.sleep(0.3)
    assert "Traceback" not in capfd.readouterr().err
    assert poll(sim, client, "ccapi-suno", task_id).status_code == 200


def test_keep_alive_reuses_one_connection(sim: Simulator, client: httpx.Client) -> None:
    task_id = sim.add_task("mountsea", steps=5)
    for _ in range(5):
        response = poll(sim, client, "mountsea", task_id)
        assert response.http_version == "HTTP/1.1"
        assert response.headers.get("connection") != "close"
    assert len(sim._conns) == 1


def test_stop_is_prompt_with_stalled_connections() -> None:
    sim = Simulator().start()
    with httpx.Client(headers=AUTH) as http:
        url = audio_url_of(sim, http, sim.add_task("ccapi-suno", steps=0))
    sim.inject("stall", target="media", delay=30, times=-1)
    sim.inject("stall", provider="mountsea", delay=30, times=-1)
    sim.inject("trickle", provider="ccapi", delay=0.2, times=-1)
    errors: list[BaseException] = []

    def fetch(target: str) -> None:
        try:
            httpx.get(target, headers=AUTH, timeout=60)
        except httpx.HTTPError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fetch, args=(target,), daemon=True)
               for target in (url, sim.provider_url("mountsea") + "producer/tasks?taskId=x",
                              sim.provider_url("ccapi") + "suno/fetch/x")]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 2
    for thread in threads:
        thread.join(timeout=5)
    assert not any(thread.is_alive() for thread in threads)
