"""What the simulator serves: media blobs, made-up song metadata, tasks and provider payloads.

`archiver.simulator` holds the state and the lifecycle, `archiver.simulator_http` routes requests
and applies faults; this module is the data side.
Payloads follow the providers' documented fetch shapes field for field. Media are real, decodable
files whose payload durations are exact, including benchmark-sized MP3s (up to gigabytes) that are
never held in memory: they are produced on the fly by repeating the shipped sample's MPEG frames
behind a patched Xing/Info header.
"""

from __future__ import annotations

import functools
import random
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from io import BytesIO
from typing import Any, Protocol, cast

import mutagen

from .providers import SOURCES as REGISTRY
from .providers import provider_defaults, sources_of
from .providers.simulated import OUTCOMES, SimClip, SimTask, Simulated, sim_uuid

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


# Tasks, and the registry that says how each source shapes them --------------------------------

def source_map() -> dict[str, str]:
    """Source name -> provider name, read from the registry now (a test may have added one)."""
    return {name: source.provider for name, source in REGISTRY.items()}


def provider_names() -> tuple[str, ...]:
    """The providers the simulator serves (each under /<provider>/), in registry order."""
    return tuple(provider_defaults())


PROVIDERS = provider_names()  # the registry as imported, for callers listing the built-in ones
SOURCES = source_map()


def behaviour(source: str) -> Simulated:
    """The registered source's simulator hooks (every source inherits them from BaseSource)."""
    return cast(Simulated, REGISTRY[source])


def hooks_of(provider: str) -> list[Simulated]:
    """The simulator hooks of a provider's sources, in registry order; empty if unknown."""
    return [cast(Simulated, source) for source in sources_of(provider)]


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
        if provider in (None, each.source, source_map().get(each.source)):
            each.generation += 1


def new_task(rng: random.Random, source: str, task_id: str | None, *, number: int, created: int,
             clips: int, outcome: str, steps: int, titles: list[str] | None, lyrics: str | None,
             audio_format: str | None, audio_bytes: int | None, duration_lie: float | None,
             duplicate_stale: bool, image_format: str) -> SimTask:
    """Validate `Simulator.add_task` arguments and build the task; all randomness from `rng`."""
    if source not in REGISTRY:
        raise ValueError(f"unknown source {source!r}; valid: {', '.join(REGISTRY)}")
    hooks = behaviour(source)
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; valid: {', '.join(OUTCOMES)}")
    ext = audio_format or ("mp3" if audio_bytes else hooks.sim_audio)
    if ext not in AUDIO_FORMATS or image_format not in IMAGE_FORMATS:
        raise ValueError(f"unsupported media format {ext!r}/{image_format!r}")
    if audio_bytes is not None and ext != "mp3":
        raise ValueError("audio_bytes padding only exists for mp3")
    if clips < 0 or steps < 0:
        raise ValueError("clips and steps must be >= 0")
    if task_id is None:
        task_id = hooks.sim_task_id(rng)
    aux = {"upstream": sim_uuid(rng), "_id": f"{rng.getrandbits(96):024x}", "api_id": sim_uuid(rng),
           "application_id": sim_uuid(rng), "credential_id": sim_uuid(rng), "user_id": sim_uuid(rng),
           "trace": sim_uuid(rng)}
    task = SimTask(source, task_id, number, outcome, steps, created, duplicate_stale, aux)
    words, tags = lyrics if lyrics is not None else make_lyrics(rng), make_tags(rng)
    audio: Blob = PaddedMp3(audio_bytes) if audio_bytes else sample(ext)
    for index in range(clips if hooks.sim_clips is None else hooks.sim_clips):
        title = titles[index % len(titles)] if titles else make_title(rng)
        duration = duration_lie if duration_lie is not None else audio.duration or 0.0
        task.clips.append(SimClip(sim_uuid(rng), source, title, words, tags, str(rng.getrandbits(32)),
                                  task.finished_at - 2 + rng.random(), audio, ext,
                                  sample(image_format), image_format, duration))
    return task


def error_body(provider: str, status: int, code: str, message: str) -> Any:
    """An error in the given provider's own shape (each documents a different one)."""
    hooks = hooks_of(provider)
    return hooks[0].sim_error(status, code, message) if hooks else {"error": message}


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
        return behaviour(task.source).sim_render(task, self.url, weird)


def poll_tasks(tasks: dict[tuple[str, str], SimTask], source: str, ids: list[str],
               renderer: Renderer, weird: str | None, *, batch: bool = False) -> list[Any]:
    """Advance each known task once and render it in its source's shape; unknown ids drop out.

    `weird` (an undocumented status) does not advance anything. Batch answers carry the stale
    copy a source may add (CCAPI, for tasks with `duplicate_stale`), alternately after and
    before the fresh one, so clients must pick by updated_at rather than by position.
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
        stale = behaviour(source).sim_stale(out[-1], task) if batch else None
        if stale is not None:
            task.batches += 1
            out.insert(len(out) if task.batches % 2 else len(out) - 1, stale)
    return out


def paced(chunks: Iterator[bytes | memoryview], rate: float | None, stopping: Any = None) -> Iterator[bytes]:
    """`chunks` cut to pieces sent no faster than `rate` bytes a second: one connection's share of a
    remote CDN (a benchmark over loopback otherwise measures only the disk)."""
    import time

    piece = 16384
    started, sent = time.monotonic(), 0
    for chunk in chunks:
        view = memoryview(chunk)
        for at in range(0, len(view), piece):
            part = bytes(view[at:at + piece])
            if rate:
                ahead = started + (sent + len(part)) / rate - time.monotonic()
                if ahead > 0:
                    if stopping is not None and stopping.wait(ahead):
                        return
                    if stopping is None:
                        time.sleep(ahead)
            sent += len(part)
            yield part

