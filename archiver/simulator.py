"""A fake of the registered task sources' fetch APIs and their media host, served over real HTTP.

Tests, `archiver demo` and the benchmarks need something that answers exactly like the documented
fetch endpoints, moves tasks through their statuses over successive polls, serves real audio with
Range support and misbehaves on request (rate limits, resets, truncated bodies, expiring links,
bodies trickled a byte at a time).
This module holds the state (tasks, clips, queued faults, the request log) and the public API;
`archiver.simulator_http` serves it, media live in `archiver.simulator_media`, and each source's
routes, payload shapes and error bodies in its provider module (the `sim_*` hooks), read from the
registry per request, so a provider registered later (a test's) is served too.

    with Simulator() as sim:
        task_id = sim.add_task("ccapi-suno")
        httpx.get(sim.provider_url("ccapi") + "suno/fetch/" + task_id,
                  headers={"Authorization": "Bearer sim-token"})

Standalone: `python -m archiver.simulator [--port N] [--tasks N]` prints the ARCHIVER_* lines.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import re
import shlex
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from archiver import simulator_media as media
from archiver.simulator_http import MediaAnswer, Server
from archiver.simulator_media import PROVIDERS, SOURCES, SimClip, SimTask, provider_names, source_map

__all__ = ["Simulator", "RequestRecord", "PROVIDERS", "SOURCES", "FAULT_KINDS", "main"]

API_ONLY = frozenset({"malformed", "unknown_status"})
MEDIA_ONLY = frozenset({"drop", "truncate", "no_length", "expire", "gone"})
FAULT_KINDS = API_ONLY | MEDIA_ONLY | {"429", "500", "502", "503", "stall", "trickle", "reset", "html200"}
DEFAULT_TOKEN = "sim-token"


@dataclass(frozen=True)
class RequestRecord:
    """One request as the simulator saw it, for assertions in tests and benchmarks."""

    time: float
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    json: Any
    status: int | None  # None when the connection was reset without an answer
    target: str  # "api" or "media"
    provider: str | None
    fault: str | None


@dataclass
class Fault:
    """A queued misbehaviour; `times` counts down, -1 means forever."""

    kind: str
    target: str
    provider: str | None
    clip_id: str | None
    times: int
    retry_after: str | float | None
    delay: float


class Simulator:
    """Fake task sources + media host on a real socket; see the module docstring."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 tokens: dict[str, str] | None = None, seed: int = 0,
                 range_support: bool = True, media_base_url: str | None = None,
                 media_latency: float = 0.0, media_rate: float | None = None) -> None:
        self.host, self.port = host, port
        # Payload media URLs point here instead of this server's own /media/ endpoint; the
        # benchmark serves the same /media/g0/<clip>.<ext> paths from nginx with this.
        self.media_base_url = media_base_url.rstrip("/") if media_base_url else None
        self.tokens = {name: DEFAULT_TOKEN for name in provider_names()} | dict(tokens or {})
        self.range_support = range_support
        # A remote CDN: seconds before each media answer, and bytes a second per connection.
        self.media_latency, self.media_rate = media_latency, media_rate
        self._rng = random.Random(seed)
        self._epoch = int(time.time()) - 3600
        self._lock = threading.RLock()
        self._tasks: dict[tuple[str, str], SimTask] = {}
        self._clips: dict[str, SimClip] = {}
        self._faults: list[Fault] = []
        self._requests: list[RequestRecord] = []
        self._conns: set[socket.socket] = set()
        self.stopping = threading.Event()  # set while stopping: wakes stalled handlers
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> Simulator:
        """Bind and serve in a daemon thread; the port is known once this returns."""
        if self._server is not None:
            return self
        self.stopping.clear()
        self._server = Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="archiver-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop promptly: wake stalled handlers and shut every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        self.stopping.set()
        server.shutdown()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- URLs and introspection -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def provider_url(self, name: str) -> str:
        """Base URL for a provider (or a source's provider), ending with "/"."""
        provider = name if name in provider_names() else source_map().get(name)
        if provider is None:
            raise ValueError(f"unknown provider {name!r}")
        return f"{self.base_url}/{provider}/"

    def token(self, provider: str) -> str:
        """The token a provider's API accepts (`tokens`, else the default for one registered later)."""
        return self.tokens.get(provider, DEFAULT_TOKEN)

    def env(self) -> dict[str, str]:
        """The ARCHIVER_* variables that point the archiver at this simulator."""
        return {key: value for name in provider_names() for key, value in (
            (f"ARCHIVER_{name.upper()}_BASE_URL", self.provider_url(name)),
            (f"ARCHIVER_{name.upper()}_TOKEN", self.token(name)))}

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of every request so far."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def count(self, target: str = "api", provider: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self._requests
                       if r.target == target and provider in (None, r.provider))

    def task_ids(self, source: str) -> list[str]:
        with self._lock:
            return [task.task_id for (src, _), task in self._tasks.items() if src == source]

    def media_bytes(self, url: str) -> bytes:
        """Exactly what the media endpoint serves for `url` (whatever its generation)."""
        found = media.locate(self._clips, re.sub(r"/{2,}", "/", urlsplit(url).path))
        if found is None:
            raise KeyError(url)
        blob = found[1]
        return b"".join(bytes(chunk) for chunk in blob.chunks(0, blob.size))

    # -- tasks and faults -------------------------------------------------------------------------

    def add_task(self, source: str, task_id: str | None = None, *, clips: int = 2,
                 outcome: str = "succeeded", steps: int = 2, titles: list[str] | None = None,
                 lyrics: str | None = None, audio_format: str | None = None,
                 audio_bytes: int | None = None, duration_lie: float | None = None,
                 duplicate_stale: bool = False, image_format: str = "jpg") -> str:
        """Register a task that advances one stage per poll; returns its id.

        `steps` polls answer a non-final status, the next one the outcome. `audio_bytes` serves
        an MP3 padded to about that size; `duration_lie` overrides the payload duration;
        `duplicate_stale` makes CCAPI batch answers carry an extra stale IN_PROGRESS copy.
        """
        with self._lock:
            if task_id is not None and (source, task_id) in self._tasks:
                raise ValueError(f"task {task_id} already exists for {source}")
            number = len(self._tasks) + 1
            task = media.new_task(self._rng, source, task_id, number=number,
                            created=self._epoch + 3 * number, clips=clips, outcome=outcome,
                            steps=steps, titles=titles, lyrics=lyrics, audio_format=audio_format,
                            audio_bytes=audio_bytes, duration_lie=duration_lie,
                            duplicate_stale=duplicate_stale, image_format=image_format)
            self._tasks[(source, task.task_id)] = task
            for clip in task.clips:
                self._clips[clip.clip_id] = clip
            return task.task_id

    def inject(self, kind: str, *, target: str = "api", provider: str | None = None,
               clip_id: str | None = None, times: int = 1, retry_after: str | float | None = None,
               delay: float = 0.0) -> None:
        """Queue a fault for the next `times` matching requests (-1: forever).

        Media-only kinds (drop, truncate, no_length, expire, gone) and any fault given a clip_id
        target media; malformed and unknown_status always target the API. `provider` may be a
        provider or a source name. `delay` is how long "stall" pauses mid-answer, and the pause
        between the bytes of a "trickle" answer (the normal body, one byte at a time; default
        `simulator_http.TRICKLE_PAUSE`).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; valid: {', '.join(sorted(FAULT_KINDS))}")
        if times == 0 or times < -1:
            raise ValueError("times must be >= 1, or -1 for forever")
        if kind in MEDIA_ONLY or (clip_id is not None and kind not in API_ONLY):
            target = "media"
        elif kind in API_ONLY:
            target = "api"
        if target not in ("api", "media"):
            raise ValueError("target must be 'api' or 'media'")
        with self._lock:
            self._faults.append(Fault(kind, target, provider, clip_id, times, retry_after, delay))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # -- what the HTTP side calls (simulator_http.Backend) ----------------------------------------

    def track(self, conn: socket.socket, *, add: bool) -> None:
        """Note an open connection (or its end), so `stop` can shut it."""
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def record(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               body: Any, status: int | None, target: str, provider: str | None,
               fault: str | None) -> None:
        """Log one request for `requests`."""
        entry = RequestRecord(time.time(), method, path, query, headers, body, status, target,
                              provider, fault)
        with self._lock:
            self._requests.append(entry)

    def take_fault(self, target: str, provider: str, source: str,
                   clip_id: str | None) -> Fault | None:
        """The next queued fault matching this request, counted as used."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.target != target or fault.provider not in (None, provider, source):
                    continue
                if fault.clip_id is not None and fault.clip_id != clip_id:
                    continue
                if fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        del self._faults[index]
                return fault
        return None

    def poll(self, source: str, ids: list[str], weird: str | None, *,
             batch: bool = False) -> list[Any]:
        """Advance and render the tasks `ids` of `source` as one poll sees them."""
        with self._lock:
            renderer = media.Renderer(self.media_base_url or self.base_url)
            return media.poll_tasks(self._tasks, source, ids, renderer, weird, batch=batch)

    def find_media(self, path: str) -> MediaAnswer | None:
        """Resolve a media path under the lock, so expiring links and a clip gone apply at once."""
        with self._lock:
            found = media.locate(self._clips, path)
            if found is None:
                return None
            clip, blob, generation = found
            provider = source_map().get(clip.source)
            if clip.gone or generation > clip.generation:
                return MediaAnswer(provider, media.MISSING)
            if generation < clip.generation:
                return MediaAnswer(provider, media.DENIED)
            fault = self.take_fault("media", provider or "", clip.source, clip.clip_id)
            if fault is not None and fault.kind == "expire":
                media.expire(self._clips, clip if fault.clip_id else None, fault.provider)
                return MediaAnswer(provider, media.DENIED, fault=fault)
            if fault is not None and fault.kind == "gone":
                clip.gone = True
                return MediaAnswer(provider, media.MISSING, fault=fault)
            return MediaAnswer(provider, blob=blob, fault=fault)


def main(argv: list[str] | None = None) -> int:
    """Serve until Ctrl-C, printing the URLs and the environment to point archiver here."""
    parser = argparse.ArgumentParser(prog="python -m archiver.simulator", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tasks", type=int, default=10, help="tasks to create across sources")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sim = Simulator(host=args.host, port=args.port, seed=args.seed)
    sources = list(source_map())
    for index in range(max(0, args.tasks)):
        sim.add_task(sources[index % len(sources)],
                     outcome="failed" if index % 7 == 6 else "succeeded")
    sim.start()
    print(f"archiver simulator on {sim.base_url}",
          *(f"  {name:<11} {sim.provider_url(name)}" for name in provider_names()), "",
          *(f"export {key}={shlex.quote(value)}" for key, value in sim.env().items()), "",
          *(f"  {source:<15} {task_id}" for source in sources for task_id in sim.task_ids(source)),
          "\nserving; press Ctrl-C to stop", sep="\n", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)
    sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
