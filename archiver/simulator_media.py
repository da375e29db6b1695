"""What the simulator serves: media blobs, made-up song metadata, tasks and provider payloads.

`archiver.simulator` is the HTTP side (routing, faults, lifecycle); this module is the data side.
Payloads follow the providers' documented fetch shapes field for field. Media are real, decodable
files whose payload durations are exact, including benchmark-sized MP3s (up to gigabytes) that are
never held in memory: they are produced on the fly by repeating the shipped sample's MPEG frames
behind a patched Xing/Info header.
"""

from __future__ import annotations

import functools
import random
import re
import string
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from io import BytesIO
from typing import Any, Protocol

import mutagen

CHUNK = 256 * 1024  # large writes keep loopback throughput up

CONTENT_TYPES: dict[str, str] = {
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "flac": "audio/flac",
    "opus": "audio/ogg",
    "wav": "audio/wav",
    "jpg": "image/jpeg",
    "png": "image/png",
}
AUDIO_FORMATS = ("mp3", "m4a", "flac", "opus", "wav")
IMAGE_FORMATS = ("jpg", "png")


class Blob(Protocol):
    """Anything the media endpoint can serve: a size, a type and byte ranges."""

    @property
    def size(self) -> int: ...

    @property
    def content_type(self) -> str: ...

    @property
    def duration(self) -> float | None: ...

    def chunks(self, start: int, end: int) -> Iterator[bytes | memoryview]: ...


@dataclass(frozen=True)
class StaticBlob:
    """A shipped file served straight from memory (they are all a few KiB)."""

    data: bytes
    content_type: str
    duration: float | None

    @property
    def size(self) -> int:
        return len(self.data)

    def chunks(self, start: int, end: int) -> Iterator[bytes | memoryview]:
        view = memoryview(self.data)
        for pos in range(start, end, CHUNK):
            yield view[pos : min(end, pos + CHUNK)]


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """[start, end) of one `bytes=` range; None to ignore it; start >= size if unsatisfiable."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not match or not (match[1] or match[2]):
        return None
    if not match[1]:
        return (max(0, size - int(match[2])) if int(match[2]) else size), size
    start = int(match[1])
    if start >= size:
        return size, size
    last = int(match[2]) if match[2] else size - 1
    return (start, min(size, last + 1)) if last >= start else None


def _read_media(name: str) -> bytes:
    return resources.files("archiver").joinpath("data", "media", name).read_bytes()


@functools.cache
def sample(ext: str) -> StaticBlob:
    """The shipped sample for an audio format, or the cover for an image format."""
    if ext in IMAGE_FORMATS:
        return StaticBlob(_read_media(f"cover.{ext}"), CONTENT_TYPES[ext], None)
    if ext not in AUDIO_FORMATS:
        raise ValueError(f"unsupported media format {ext!r}")
    data = _read_media(f"sample.{ext}")
    info = mutagen.File(BytesIO(data))
    if info is None:
        raise ValueError(f"mutagen cannot read sample.{ext}")
    return StaticBlob(data, CONTENT_TYPES[ext], float(info.info.length))


_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_RATES = (44100, 48000, 32000)
_SAMPLES_PER_FRAME = 1152


def _frame_length(header: bytes) -> int | None:
    """Byte length of an MPEG-1 Layer III frame from its header, None if not one."""
    if len(header) < 4 or header[0] != 0xFF or (header[1] & 0xFE) != 0xFA:
        return None
    bitrate, rate = header[2] >> 4, (header[2] >> 2) & 3
    if bitrate in (0, 15) or rate == 3:
        return None
    return 144000 * _KBPS[bitrate] // _RATES[rate] + ((header[2] >> 1) & 1)


@dataclass(frozen=True)
class _Mp3Parts:
    """The sample split into header (ID3 + Info frame) and repeatable audio frames."""

    prefix: bytes
    info_at: int  # offset of the Info frame in prefix, -1 if the sample has none
    xing_at: int
    info_len: int
    body: bytes
    frames: int
    sample_rate: int
    length: float  # mutagen's length of the unpadded sample
    tile: bytes  # body repeated so any CHUNK can be sliced from one buffer


@functools.cache
def _mp3_parts() -> _Mp3Parts:
    data = sample("mp3").data
    pos = 0
    if data[:3] == b"ID3":
        size = 0
        for byte in data[6:10]:
            size = (size << 7) | (byte & 0x7F)
        pos = 10 + size + (10 if data[5] & 0x10 else 0)
    end = len(data) - (128 if data[-128:-125] == b"TAG" else 0)
    first = _frame_length(data[pos : pos + 4])
    if first is None:
        raise ValueError("sample.mp3 does not start with an MPEG-1 Layer III frame")
    rate = _RATES[(data[pos + 2] >> 2) & 3]
    xing = pos + (21 if data[pos + 3] >> 6 == 3 else 36)
    has_info = data[xing : xing + 4] in (b"Xing", b"Info")
    start = pos + first if has_info else pos
    frames, cursor = 0, start
    while cursor < end:
        length = _frame_length(data[cursor : cursor + 4])
        if length is None or cursor + length > end:
            break
        frames, cursor = frames + 1, cursor + length
    body = data[start:cursor]
    repeat = -(-(CHUNK + len(body)) // len(body))
    return _Mp3Parts(
        prefix=data[:start],
        info_at=pos if has_info else -1,
        xing_at=xing if has_info else -1,
        info_len=first if has_info else 0,
        body=body,
        frames=frames,
        sample_rate=rate,
        length=sample("mp3").duration or 0.0,
        tile=body * repeat,
    )


class PaddedMp3:
    """A valid MP3 of about `target` bytes: the sample's frames repeated, generated on the fly."""

    content_type = CONTENT_TYPES["mp3"]

    def __init__(self, target: int) -> None:
        parts = _mp3_parts()
        room = max(0, min(target, 0xFFFF0000) - len(parts.prefix))
        self._repeats = max(1, round(room / len(parts.body)))
        self._parts = parts
        self._prefix = self._patched_prefix()
        self.size = len(self._prefix) + self._repeats * len(parts.body)
        extra = (self._repeats - 1) * parts.frames * _SAMPLES_PER_FRAME
        self.duration = parts.length + extra / parts.sample_rate

    def _patched_prefix(self) -> bytes:
        """Patch the Info frame's frame and byte counts (and TOC) so players see the full length."""
        parts = self._parts
        prefix = bytearray(parts.prefix)
        if parts.xing_at < 0:
            return bytes(prefix)
        flags = struct.unpack(">I", prefix[parts.xing_at + 4 : parts.xing_at + 8])[0]
        cursor = parts.xing_at + 8
        if flags & 1:
            prefix[cursor : cursor + 4] = struct.pack(">I", self._repeats * parts.frames)
            cursor += 4
        if flags & 2:
            total = parts.info_len + self._repeats * len(parts.body)
            prefix[cursor : cursor + 4] = struct.pack(">I", total)
            cursor += 4
        if flags & 4:
            prefix[cursor : cursor + 100] = bytes(i * 256 // 100 for i in range(100))
        return bytes(prefix)

    def chunks(self, start: int, end: int) -> Iterator[bytes | memoryview]:
        prefix, body_len = len(self._prefix), len(self._parts.body)
        tile = memoryview(self._parts.tile)
        pos = start
        while pos < end:
            if pos < prefix:
                step = min(end, prefix) - pos
                yield self._prefix[pos : pos + step]
            else:
                offset = (pos - prefix) % body_len
                step = min(end - pos, CHUNK)
                yield tile[offset : offset + step]
            pos += step


# Made-up but plausible metadata -------------------------------------------------------------

_TAGS = (
    "pop", "light", "clean", "indie pop", "vocal", "synthwave", "lo-fi", "acoustic", "folk",
    "dream pop", "emotional", "piano", "upbeat", "electronic", "r&b", "soul", "rock", "chill",
)
_LINES = (
    "Quiet street and the morning rain", "I kept your letters in a paper plane",
    "Every light in the city knows my name", "We were running but we never ran away",
    "Hold the moment like it's made of glass", "Count the stars until the shadows pass",
    "There's a song in the static of the night", "Turn it up and let it feel alright",
    "Dancing slow beneath the neon glow", "Tell me something that I'll never know",
    "All the roads lead back to you", "Painted skies in every shade of blue",
    "Whisper softly, the world can wait", "We'll be golden if we're never late",
)


@functools.cache
def _title_pool() -> tuple[str, ...]:
    text = resources.files("archiver").joinpath("data", "simulator_titles.txt").read_text("utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def make_title(rng: random.Random) -> str:
    """A realistic song title from the shipped list."""
    return rng.choice(_title_pool())


def make_tags(rng: random.Random) -> str:
    """A comma-separated style string like the providers return ("pop, light, clean")."""
    return ", ".join(rng.sample(_TAGS, rng.randint(3, 5)))


def make_lyrics(rng: random.Random) -> str:
    """Multi-line lyrics with [Verse]/[Chorus]/[Bridge] sections."""
    chorus = rng.sample(_LINES, 2)
    sections: list[str] = []
    for name in ("[Verse]", "[Chorus]", "[Verse 2]", "[Chorus]", "[Bridge]"):
        lines = chorus if name == "[Chorus]" else rng.sample(_LINES, 2)
        sections.append("\n".join([name, *lines]))
    return "\n".join(sections)


# Tasks and the providers' payload shapes ------------------------------------------------------

PROVIDERS = ("ccapi", "mountsea", "acedata", "aimusicapi")
SOURCES: dict[str, str] = {
    "ccapi-suno": "ccapi", "ccapi-producer": "ccapi", "mountsea": "mountsea",
    "acedata": "acedata", "aimusicapi": "aimusicapi",
}
DEFAULT_AUDIO = {"ccapi-suno": "mp3", "ccapi-producer": "mp3", "mountsea": "mp3",
                 "acedata": "m4a", "aimusicapi": "m4a"}
OUTCOMES = ("succeeded", "failed", "cancelled", "timeout")
STEP_SECONDS = 8  # virtual seconds a task's clock moves per poll, so updated_at always grows
_STAGES = {  # the four non-final stages, in order, as each provider names them
    "ccapi": ("NOT_START", "SUBMITTED", "QUEUED", "IN_PROGRESS"),
    "mountsea": ("pending", "ready", "assigned", "processing"),
    "aimusicapi": ("pending", "pending", "running", "running"),
}
_FAIL_REASON = {"failed": "upstream generation failed: lyrics rejected by content filter",
                "cancelled": "task cancelled by user", "timeout": "upstream timed out"}


@dataclass(eq=False)
class SimClip:
    clip_id: str
    source: str
    title: str
    lyrics: str
    tags: str
    seed: str
    created: float
    audio: Blob
    audio_ext: str
    image: Blob
    image_ext: str
    duration: float
    generation: int = 0  # bumped by "expire": URLs of older generations answer 403 forever
    gone: bool = False


@dataclass(eq=False)
class SimTask:
    source: str
    task_id: str
    number: int
    outcome: str
    steps: int
    created: int
    duplicate_stale: bool
    aux: dict[str, str]  # the extra ids some shapes carry (trace ids, AceData's _id...)
    clips: list[SimClip] = field(default_factory=list)
    polls: int = 0
    batches: int = 0

    @property
    def provider(self) -> str:
        return SOURCES[self.source]

    @property
    def updated_at(self) -> int:
        return self.created + STEP_SECONDS * self.polls

    @property
    def finished_at(self) -> int:
        return self.created + STEP_SECONDS * (self.steps + 1)

    def stage(self) -> tuple[int | None, int]:
        """(stage 0..3, percent) while running, (None, 100) once final."""
        if self.polls >= 1 and self.polls > self.steps:
            return None, 100
        i, s = max(0, self.polls - 1), self.steps
        stage = min(3, i if s > 4 else 4 - s + i)
        return stage, (0 if stage < 3 else max(1, min(99, round(100 * (i + 1) / (s + 1)))))


_MEDIA_PATH = re.compile(r"/media/g(\d+)/([\w-]+)\.(\w+)")  # generation, clip id, extension


def locate(clips: dict[str, SimClip], path: str) -> tuple[SimClip, Blob, int] | None:
    """The clip, blob and URL generation a media path names; None if it names nothing."""
    match = _MEDIA_PATH.fullmatch(path)
    clip = clips.get(match[2]) if match else None
    if match is None or clip is None or match[3] not in (clip.audio_ext, clip.image_ext):
        return None
    return clip, clip.audio if match[3] == clip.audio_ext else clip.image, int(match[1])


def expire(clips: dict[str, SimClip], clip: SimClip | None, provider: str | None) -> None:
    """Invalidate the links of one clip, or of all (the provider's) clips: the next poll of
    their tasks hands out URLs of a new generation; old ones answer 403 forever."""
    for each in [clip] if clip else clips.values():
        if provider in (None, each.source, SOURCES[each.source]):
            each.generation += 1


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def new_task(rng: random.Random, source: str, task_id: str | None, *, number: int, created: int,
             clips: int, outcome: str, steps: int, titles: list[str] | None, lyrics: str | None,
             audio_format: str | None, audio_bytes: int | None, duration_lie: float | None,
             duplicate_stale: bool, image_format: str) -> SimTask:
    """Validate `Simulator.add_task` arguments and build the task; all randomness from `rng`."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; valid: {', '.join(SOURCES)}")
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; valid: {', '.join(OUTCOMES)}")
    ext = audio_format or ("mp3" if audio_bytes else DEFAULT_AUDIO[source])
    if ext not in AUDIO_FORMATS or image_format not in IMAGE_FORMATS:
        raise ValueError(f"unsupported media format {ext!r}/{image_format!r}")
    if audio_bytes is not None and ext != "mp3":
        raise ValueError("audio_bytes padding only exists for mp3")
    if clips < 0 or steps < 0:
        raise ValueError("clips and steps must be >= 0")
    if task_id is None:
        alnum = string.ascii_letters + string.digits
        task_id = ("task_" + "".join(rng.choice(alnum) for _ in range(32))
                   if source.startswith("ccapi") else _uuid(rng))
    aux = {"upstream": _uuid(rng), "_id": f"{rng.getrandbits(96):024x}", "api_id": _uuid(rng),
           "application_id": _uuid(rng), "credential_id": _uuid(rng), "user_id": _uuid(rng),
           "trace": _uuid(rng)}
    task = SimTask(source, task_id, number, outcome, steps, created, duplicate_stale, aux)
    words, tags = lyrics if lyrics is not None else make_lyrics(rng), make_tags(rng)
    audio: Blob = PaddedMp3(audio_bytes) if audio_bytes else sample(ext)
    for index in range(1 if source == "mountsea" else clips):  # MountSea: one clip per task
        title = titles[index % len(titles)] if titles else make_title(rng)
        duration = duration_lie if duration_lie is not None else audio.duration or 0.0
        task.clips.append(SimClip(_uuid(rng), source, title, words, tags, str(rng.getrandbits(32)),
                                  task.finished_at - 2 + rng.random(), audio, ext,
                                  sample(image_format), image_format, duration))
    return task


def iso(epoch: float, digits: int = 3) -> str:
    """ISO 8601 UTC with a Z, like the providers ("2026-03-13T07:13:16.900Z")."""
    stamp = datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return stamp[: len(stamp) - 6 + digits] + "Z"


def error_body(provider: str, status: int, code: str, message: str) -> dict[str, Any]:
    """An error in the given provider's own shape (each documents a different one)."""
    if provider == "ccapi":
        return {"code": code, "message": message, "data": None}
    if provider == "mountsea":
        return {"statusCode": status, "message": message}
    if provider == "acedata":
        return {"success": False, "error": {"code": code, "message": message},
                "trace_id": str(uuid.uuid4())}
    if provider == "aimusicapi":
        return {"code": status, "message": message}
    return {"error": message}


def unauthorized(provider: str) -> dict[str, Any]:
    """The 401 body each provider sends for a bad or missing token."""
    if provider == "ccapi":
        return error_body(provider, 401, "unauthorized", "invalid token")
    return error_body(provider, 401, "invalid_token", "invalid or missing token"
                      if provider == "acedata" else "Unauthorized")


def not_found(provider: str) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) for an unknown task id; AIMusicAPI says so inside an HTTP 200."""
    if provider == "aimusicapi":
        return 200, {"code": 404, "data": None, "message": "记录不存在"}
    code = "task_not_exist" if provider == "ccapi" else "not_found"
    return 404, error_body(provider, 404, code, "Task not found" if provider == "mountsea"
                           else "task not found")


DENIED = (403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")
MISSING = (404, b"<Error><Code>NoSuchKey</Code><Message>No such object</Message></Error>")
HTML_ERROR = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>"
              b"<h1>Bad Gateway</h1><p>The upstream server is temporarily unavailable.</p>"
              b"</body></html>")


class Renderer:
    """Turns a task's current stage into its source's documented JSON shape."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def url(self, clip: SimClip, ext: str) -> str:
        return f"{self.base_url}/media/g{clip.generation}/{clip.clip_id}.{ext}"

    def render(self, task: SimTask, weird: str | None) -> Any:
        """The task as its fetch endpoint returns it; `weird` overrides the status string."""
        stage, pct = task.stage()
        ok = stage is None and task.outcome == "succeeded"
        if task.provider == "ccapi":
            return self._ccapi(task, stage, pct, ok, weird)
        if task.provider == "mountsea":
            return self._mountsea(task, stage, ok, weird)
        if task.provider == "acedata":
            return self._acedata(task, stage, ok, weird)
        state = weird or (_STAGES["aimusicapi"][stage] if stage is not None
                          else "succeeded" if ok else "failed")
        clips = [self._song_clip(clip, "aimusicapi", state, state == "succeeded")
                 for clip in task.clips]
        for clip in clips if state == "failed" else []:
            clip["error"] = _FAIL_REASON[task.outcome]
        return clips

    def _ccapi(self, task: SimTask, stage: int | None, pct: int, ok: bool,
               weird: str | None) -> dict[str, Any]:
        platform = task.source.split("-", 1)[1]
        status = weird or (_STAGES["ccapi"][stage] if stage is not None
                           else "SUCCESS" if ok else "FAILURE")
        record: dict[str, Any] = {
            "id": task.number, "created_at": task.created, "updated_at": task.updated_at,
            "task_id": task.task_id, "platform": platform, "user_id": 3, "group": f"{platform}-A",
            "channel_id": 27 if platform == "suno" else 28,
            "quota": 40000 if platform == "suno" else 30000, "action": "MUSIC", "status": status,
            "fail_reason": "" if ok or stage is not None else _FAIL_REASON[task.outcome],
            "submit_time": task.created,
            "start_time": task.created + STEP_SECONDS if stage is None or stage >= 3 else 0,
            "finish_time": task.finished_at if stage is None else 0, "progress": f"{pct}%",
            "properties": {"input": "", "upstream_model_name": f"{platform}_music",
                           "origin_model_name": f"{platform}_music"},
            "data": {"progress": f"{pct}%", "status": status, "task_id": task.aux["upstream"]},
        }
        if ok and not weird:
            if task.clips:
                record["result_url"] = self.url(task.clips[0], task.clips[0].audio_ext)
            record["data"] = {"clips": [self._ccapi_clip(clip, platform) for clip in task.clips]}
        return record

    def _ccapi_clip(self, clip: SimClip, platform: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "clip_id": clip.clip_id, "state": "completed", "title": clip.title, "tags": clip.tags,
            "lyrics": clip.lyrics, "image_url": self.url(clip, clip.image_ext),
            "audio_url": self.url(clip, clip.audio_ext), "video_url": None,
            "created_at": iso(clip.created), "duration": clip.duration, "negative_tags": None,
            "style_weight": None, "weirdness_constraint": None, "audio_weight": None,
        }
        if platform == "producer":
            body["model"] = "producer_music"
        return body

    @staticmethod
    def stale(fresh: dict[str, Any], task: SimTask) -> dict[str, Any]:
        """The duplicate the CCAPI docs show: the same task, IN_PROGRESS, older updated_at."""
        return fresh | {
            "updated_at": max(task.created, task.updated_at - STEP_SECONDS // 2) - 1,
            "status": "IN_PROGRESS", "fail_reason": "", "finish_time": 0, "progress": "20%",
            "start_time": task.created + STEP_SECONDS,
            "data": {"progress": "20%", "status": "IN_PROGRESS", "task_id": task.aux["upstream"]},
        }

    def _mountsea(self, task: SimTask, stage: int | None, ok: bool,
                  weird: str | None) -> dict[str, Any]:
        status = weird or (_STAGES["mountsea"][stage] if stage is not None
                           else "completed" if ok else task.outcome)
        body: dict[str, Any] = {"taskId": task.task_id, "status": status}
        if status == "completed" and task.clips:
            clip = task.clips[0]
            body["result"] = {"audioId": clip.clip_id, "audioUrl": self.url(clip, clip.audio_ext),
                              "duration": clip.duration, "title": clip.title}
        elif status in ("failed", "timeout"):
            body["errorMessage"] = _FAIL_REASON[task.outcome]
            body["errorCode"] = 504 if status == "timeout" else 500
        if stage is None and not weird:
            body["finishedAt"] = iso(task.finished_at)
        body["createdAt"] = iso(task.created)
        body["traceId"] = f"trace-{task.aux['trace'][:8]}"
        return body

    def _song_clip(self, clip: SimClip, provider: str, state: str, full: bool) -> dict[str, Any]:
        """An AceData or AIMusicAPI clip; unfinished clips have no media URLs and no duration."""
        ace = provider == "acedata"
        body: dict[str, Any] = {"id" if ace else "clip_id": clip.clip_id, "title": clip.title}
        if full:
            body["image_url"] = self.url(clip, clip.image_ext)
        body["lyric" if ace else "lyrics"] = clip.lyrics
        if full:
            body["audio_url"] = self.url(clip, clip.audio_ext)
        body["video_url"] = None
        if ace:
            body |= {"image_id": clip.clip_id, "topic": None}
        body |= {"seed": clip.seed, "sound": clip.tags, "created_at": iso(clip.created, 6),
                 "model" if ace else "mv": "FUZZ-2.0 Pro"}
        if ace:
            body["progress"] = "100%" if full else "50%"
        body["state"] = state
        if full:  # AceData sends the duration as a string, AIMusicAPI as a number
            body["duration"] = repr(clip.duration) if ace else clip.duration
        return body

    def _acedata(self, task: SimTask, stage: int | None, ok: bool,
                 weird: str | None) -> dict[str, Any]:
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
                self._song_clip(clip, "acedata", weird, False) for clip in task.clips]}
        elif stage == 3:  # started: a response exists but has no data yet
            record["response"] = {"task_id": task.task_id}
        elif stage is None:
            if ok:
                record["response"] = {"task_id": task.task_id, "data": [
                    self._song_clip(clip, "acedata", "succeeded", True) for clip in task.clips]}
            else:
                record["response"] = {"success": False,
                                      "error": {"code": "api_error", "message": "fetch failed"}}
            finished = task.finished_at + fraction / 2
            record["duration"] = finished - record["created_at"]
            record["finished_at"] = finished
        return record


def poll_tasks(tasks: dict[tuple[str, str], SimTask], source: str, ids: list[str],
               renderer: Renderer, weird: str | None, *, batch: bool = False) -> list[Any]:
    """Advance each known task once and render it in its source's shape; unknown ids drop out.

    `weird` (an undocumented status) does not advance anything. Batch answers for CCAPI tasks
    with `duplicate_stale` carry a stale copy, alternately after and before the fresh one, so
    clients must pick by updated_at rather than by position.
    """
    out: list[Any] = []
    seen: set[str] = set()
    for task_id in ids:
        task = tasks.get((source, task_id))
        if task is None:
            continue
        if task_id not in seen and not weird:
            task.polls += 1
        seen.add(task_id)
        out.append(renderer.render(task, weird))
        if batch and task.duplicate_stale and task.provider == "ccapi":
            task.batches += 1
            stale = renderer.stale(out[-1], task)
            out.insert(len(out) if task.batches % 2 else len(out) - 1, stale)
    return out
