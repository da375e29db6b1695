"""How a source behaves inside the simulator: its routes, payload shapes and error bodies.

Every source inherits these hooks (BaseSource mixes them in) and overrides what its docs shape
differently, so the simulator and `archiver demo` learn every provider from the registry alone.
Stdlib only: the simulator's media side (mutagen) stays out of the providers, and the clips'
blobs are typed loosely here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import random  # the simulator's own; importing it here would cost every command's start-up

STEP_SECONDS = 8  # virtual seconds a task's clock moves per poll, so updated_at always grows
OUTCOMES = ("succeeded", "failed", "cancelled", "timeout")
FAIL_REASON = {"failed": "upstream generation failed: lyrics rejected by content filter",
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
    audio: Any  # a simulator_media.Blob
    audio_ext: str
    image: Any  # a simulator_media.Blob
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

    @property
    def succeeded(self) -> bool:
        """Final, with the outcome "succeeded"."""
        return self.stage()[0] is None and self.outcome == "succeeded"


UrlFor = Callable[[SimClip, str], str]  # (clip, extension) -> the clip's current media URL


@dataclass(frozen=True)
class SimCall:
    """A request a source recognised: the ids as sent (the simulator checks them), whether it is
    the one-id form, and the (code, message) its invalid-request answer carries."""

    ids: Any
    single: bool = True
    bad: tuple[str, str] = ("bad_request", "invalid request")


def iso(epoch: float, digits: int = 3) -> str:
    """ISO 8601 UTC with a Z, like the providers ("2026-03-13T07:13:16.900Z")."""
    stamp = datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return stamp[: len(stamp) - 6 + digits] + "Z"


def sim_uuid(rng: random.Random) -> str:
    import uuid

    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class Simulated:
    """The simulator hooks with plain defaults: a source without routes answers 404 there."""

    name: ClassVar[str]
    provider: ClassVar[str]
    sim_audio: ClassVar[str] = "mp3"  # its clips' audio format unless a test asks otherwise
    sim_clips: ClassVar[int | None] = None  # clips per task when the provider fixes the number
    sim_demo: ClassVar[tuple[str, ...]] = ()  # outcomes of the tasks `archiver demo` adds

    def sim_task_id(self, rng: random.Random) -> str:
        """A new task id in the provider's style."""
        return sim_uuid(rng)

    def sim_route(self, method: str, path: list[str], query: Mapping[str, str],
                  body: Mapping[str, Any]) -> SimCall | None:
        """The fetch call a request (path below the provider's prefix) makes, None if not this source's."""
        return None

    def sim_render(self, task: SimTask, url: UrlFor, weird: str | None) -> Any:
        """The task's current stage as its fetch endpoint returns it; `weird` overrides the status."""
        raise NotImplementedError(f"{self.name} has no simulator rendering")

    def sim_single(self, record: Any) -> Any:
        """The body answering a one-id fetch."""
        return record

    def sim_batch(self, records: list[Any]) -> Any:
        """The body answering a batch fetch."""
        return records

    def sim_stale(self, fresh: Any, task: SimTask) -> Any | None:
        """An outdated copy a batch answer carries besides `fresh` (None: the provider sends none)."""
        return None

    def sim_error(self, status: int, code: str, message: str) -> Any:
        """An error body in the provider's own shape."""
        return {"error": message}

    def sim_unauthorized(self) -> Any:
        """The 401 body for a bad or missing token."""
        return self.sim_error(401, "unauthorized", "invalid token")

    def sim_not_found(self) -> tuple[int, Any]:
        """(HTTP status, body) for an unknown task id."""
        return 404, self.sim_error(404, "not_found", "task not found")

    def sim_invalid(self, call: SimCall) -> tuple[int, Any]:
        """(HTTP status, body) for a request whose ids are missing or malformed."""
        return 400, self.sim_error(400, *call.bad)


def producer_clip(clip: SimClip, url: UrlFor, state: str, full: bool, *, acedata: bool) -> dict[str, Any]:
    """The FUZZ clip AceData and AIMusicAPI both resell, in either's spelling; unfinished clips
    have no media URLs and no duration."""
    body: dict[str, Any] = {"id" if acedata else "clip_id": clip.clip_id, "title": clip.title}
    if full:
        body["image_url"] = url(clip, clip.image_ext)
    body["lyric" if acedata else "lyrics"] = clip.lyrics
    if full:
        body["audio_url"] = url(clip, clip.audio_ext)
    body["video_url"] = None
    if acedata:
        body |= {"image_id": clip.clip_id, "topic": None}
    body |= {"seed": clip.seed, "sound": clip.tags, "created_at": iso(clip.created, 6),
             "model" if acedata else "mv": "FUZZ-2.0 Pro"}
    if acedata:
        body["progress"] = "100%" if full else "50%"
    body["state"] = state
    if full:  # AceData sends the duration as a string, AIMusicAPI as a number
        body["duration"] = repr(clip.duration) if acedata else clip.duration
    return body
