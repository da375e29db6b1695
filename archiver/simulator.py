"""A fake of the registered task sources' fetch APIs and their media host, served over real HTTP.

Tests, `archiver demo` and the benchmarks need something that answers exactly like the documented
fetch endpoints, moves tasks through their statuses over successive polls, serves real audio with
Range support and misbehaves on request (rate limits, resets, truncated bodies, expiring links,
bodies trickled a byte at a time).
This module is the HTTP side; media live in `archiver.simulator_media`, and each source's routes,
payload shapes and error bodies in its provider module (the `sim_*` hooks), read from the registry
per request, so a provider registered later (a test's) is served too.

    with Simulator() as sim:
        task_id = sim.add_task("ccapi-suno")
        httpx.get(sim.provider_url("ccapi") + "suno/fetch/" + task_id,
                  headers={"Authorization": "Bearer sim-token"})

Standalone: `python -m archiver.simulator [--port N] [--tasks N]` prints the ARCHIVER_* lines.
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import json
import random
import re
import shlex
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any, Iterable
from urllib.parse import parse_qsl, unquote, urlsplit

from archiver import simulator_media as media
from archiver.simulator_media import PROVIDERS, SOURCES, Blob, SimClip, SimTask, provider_names, source_map

__all__ = ["Simulator", "RequestRecord", "PROVIDERS", "SOURCES", "FAULT_KINDS", "main"]

API_ONLY = frozenset({"malformed", "unknown_status"})
MEDIA_ONLY = frozenset({"drop", "truncate", "no_length", "expire", "gone"})
FAULT_KINDS = API_ONLY | MEDIA_ONLY | {"429", "500", "502", "503", "stall", "trickle", "reset", "html200"}
TRICKLE_PAUSE = 0.25  # seconds between trickled bytes unless the fault gives a delay: 4 B/s
WEIRD_STATUS = "WEIRD_STATE"
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sim: Simulator) -> None:
        self.sim = sim
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn) that can take seconds.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up is routine here (aborted downloads, resets); only real bugs print.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real hosts
    server_version = "archiver-simulator/1.0"
    timeout = 30
    server: _Server
    # Per-request state, reset by _dispatch; _logged stays True outside a dispatched request.
    _status: int | None = None
    _fault: str | None = None
    _trickle: float = 0.0  # > 0: the answer's body goes out one byte every this many seconds
    _body: Any = None
    _provider: str | None = None
    _logged = True
    _meta: tuple[str, dict[str, str], str]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet on purpose
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle + delayed ACK add 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.sim._track(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.sim._track(self.connection, add=False)

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, unknown method) as JSON, then close."""
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # unparsable request line: answer in 1.1 anyway
            self.request_version = self.protocol_version
        body = json.dumps({"error": message or HTTPStatus(code).phrase}).encode()
        self._send(code, body, "application/json", {"Connection": "close"})

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except OSError:  # the client reset the connection between or during requests
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    # -- plumbing ---------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, ctype: str,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if getattr(self, "command", None) == "HEAD":
            return
        if self._trickle:
            self._trickle_out([body], self._trickle)
        else:
            self.wfile.write(body)

    def _trickle_out(self, chunks: Iterable[bytes | memoryview], pause: float) -> None:
        """One byte every `pause` s: each read lands well within any read timeout, yet a body
        of a few KiB takes many minutes. Stops when the client hangs up or the simulator stops."""
        sim = self.server.sim
        for chunk in chunks:
            for at in range(len(chunk)):
                self.wfile.write(chunk[at:at + 1])  # OSError once the client is gone: ends the request
                if sim._stopping.wait(pause):
                    self._abort()
                    return

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8", headers=headers)

    def _drain(self, limit: float = 2.0) -> None:
        """Wait (Linux: TIOCOUTQ) until the client's kernel has every byte written so far, so a
        following RST cuts the body where we chose rather than discarding what was in flight."""
        deadline = time.monotonic() + limit
        with contextlib.suppress(OSError, ImportError):
            import fcntl
            import termios

            while time.monotonic() < deadline:
                queued = fcntl.ioctl(self.connection.fileno(), termios.TIOCOUTQ, b"\0" * 4)
                if not struct.unpack("i", queued)[0] or self.server.sim._stopping.wait(0.002):
                    return

    def _abort(self) -> None:
        """Close with an RST (SO_LINGER 0): the client sees a reset, not a clean end."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()  # the real close (RST) happens once finish() drops the files

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length", "0").strip()
        return self.rfile.read(int(length)) if length.isdigit() and int(length) <= 1 << 20 else None

    def _dispatch(self) -> None:
        self._status, self._fault, self._body, self._logged = None, None, None, False
        self._trickle = 0.0
        request_target = self.path
        if request_target.startswith(("http://", "https://")):  # absolute form, as via a proxy
            request_target = "/" + request_target.split("/", 3)[-1]
        path, _, query_text = request_target.partition("#")[0].partition("?")
        path = re.sub(r"/{2,}", "/", path) or "/"  # the docs' own URLs have "//"
        parts = [unquote(part) for part in path.split("/") if part]
        target = "media" if parts[:1] == ["media"] else "api"
        self._provider = parts[0] if parts and parts[0] in provider_names() else None
        query = dict(parse_qsl(query_text, keep_blank_values=True))
        self._meta = (path, query, target)
        try:
            raw = self._read_body()
            if raw is None:
                self.close_connection = True
                body = media.error_body(self._provider or "", 400, "bad_request", "bad body")
                self._json(400, body)
            elif target == "media":
                self._media(parts)
            elif self._provider is None:
                self._json(404, {"error": "no such endpoint"})
            else:
                if raw:
                    try:
                        self._body = json.loads(raw)
                    except ValueError:
                        self._body = raw.decode("utf-8", "replace")
                self._api(self._provider, parts, query)
        except OSError:
            self.close_connection = True
        except Exception:  # a bug in the fake must still answer, never kill the server
            self.close_connection = True
            if self._status is None:
                self._json(500, {"error": "simulator error"})
        finally:
            self._log()

    def end_headers(self) -> None:
        self._log()  # before the client can see the answer, so tests never race the record
        super().end_headers()

    def _log(self) -> None:
        if self._logged:
            return
        self._logged = True
        path, query, target = self._meta
        headers = {key.lower(): value for key, value in self.headers.items()}
        self.server.sim._record(RequestRecord(
            time.time(), self.command, path, query, headers, self._body, self._status, target,
            self._provider, self._fault))

    def _fault_answer(self, fault: Fault, provider: str | None) -> bool:
        """Answer for the faults common to API and media; True when the request is done."""
        kind = fault.kind
        self._fault = kind
        if kind in ("429", "500", "502", "503"):
            status, headers = int(kind), {}
            value = 1 if fault.retry_after is None and kind == "429" else fault.retry_after
            if value == "date":
                value = email.utils.formatdate(time.time() + 2, usegmt=True)
            elif isinstance(value, float) and value.is_integer():
                value = int(value)
            if value is not None and kind in ("429", "503"):
                headers["Retry-After"] = str(value)
            code = "too_many_requests" if kind == "429" else "api_error"
            phrase = HTTPStatus(status).phrase
            self._json(status, media.error_body(provider or "", status, code, phrase), headers)
        elif kind == "reset":
            self._abort()
        elif kind == "html200":
            self._send(200, media.HTML_ERROR, "text/html; charset=utf-8")
        elif kind == "malformed":
            self._send(200, b'{"code": "success", "data": {"task_id": "tas', "application/json")
        elif kind == "stall" and self.server.sim._stopping.wait(fault.delay):
            self._abort()  # stopping: give up on the request
        elif kind == "trickle":
            self._trickle = fault.delay or TRICKLE_PAUSE
            return False  # the normal answer, slowly
        else:
            return False
        return True

    # -- API --------------------------------------------------------------------------------------

    def _api(self, provider: str, parts: list[str], query: dict[str, str]) -> None:
        sim, body, rest = self.server.sim, self._body, parts[1:]
        data = body if isinstance(body, dict) else {}
        hooks = media.hooks_of(provider)
        routed = ((source, source.sim_route(self.command, rest, query, data)) for source in hooks)
        source, call = next(((s, c) for s, c in routed if c is not None), (hooks[0], None))
        fault = sim._take_fault("api", provider, source.name if call else provider, None)
        if fault is not None and self._fault_answer(fault, provider):
            return
        weird = WEIRD_STATUS if fault is not None and fault.kind == "unknown_status" else None
        if self.headers.get("Authorization", "").strip() != f"Bearer {sim.token(provider)}":
            self._json(401, hooks[0].sim_unauthorized())
            return
        if call is None:
            self._json(404, media.error_body(provider, 404, "not_found", "no such endpoint"))
            return
        ids = call.ids
        if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids) \
                or (call.single and len(ids) != 1):
            self._json(*source.sim_invalid(call))
            return
        found = sim._poll(source.name, ids, weird, batch=not call.single)
        if not call.single:
            self._json(200, source.sim_batch(found))
        elif not found:
            self._json(*source.sim_not_found())
        else:
            self._json(200, source.sim_single(found[0]))

    # -- media ------------------------------------------------------------------------------------

    def _media(self, parts: list[str]) -> None:
        sim = self.server.sim
        if self.command not in ("GET", "HEAD"):
            self._json(405, {"error": "method not allowed"}, {"Allow": "GET, HEAD"})
            return
        answer: tuple[int, bytes] | None = media.MISSING
        fault: Fault | None = None
        blob: Blob | None = None
        with sim._lock:
            found = media.locate(sim._clips, "/" + "/".join(parts))
            if found is not None:
                clip, blob, generation = found
                self._provider, answer = source_map().get(clip.source), None
                if clip.gone or generation > clip.generation:
                    answer = media.MISSING
                elif generation < clip.generation:
                    answer = media.DENIED
                else:
                    fault = sim._take_fault("media", self._provider or "", clip.source, clip.clip_id)
                    if fault is not None and fault.kind == "expire":
                        media.expire(sim._clips, clip if fault.clip_id else None, fault.provider)
                        answer, self._fault = media.DENIED, "expire"
                    elif fault is not None and fault.kind == "gone":
                        clip.gone = True
                        answer, self._fault = media.MISSING, "gone"
        if answer is not None or blob is None:
            status, text = answer or media.MISSING
            self._send(status, text, "application/xml; charset=utf-8")
            return
        if fault is not None and fault.kind not in ("stall", "trickle", "drop", "truncate", "no_length") \
                and self._fault_answer(fault, None):
            return
        self._serve_blob(blob, fault)

    def _serve_blob(self, blob: Blob, fault: Fault | None) -> None:
        """Send a blob or a Range of it; body faults cut, stall or reset it midway."""
        sim, size = self.server.sim, blob.size
        start, end, status = 0, size, 200
        requested = self.headers.get("Range")
        if requested and sim.range_support:
            parsed = media.parse_range(requested, size)
            if parsed is not None and parsed[0] >= size:
                self._send(416, b"", "text/plain", headers={"Content-Range": f"bytes */{size}"})
                return
            if parsed is not None:
                (start, end), status = parsed, 206
        kind = fault.kind if fault is not None else None
        self._fault = kind
        self.send_response(status)
        self.send_header("Content-Type", blob.content_type)
        if sim.range_support:
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        if kind == "no_length":
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(end - start))
        self.end_headers()
        if self.command == "HEAD":
            return
        if kind == "trickle" and fault is not None:
            self._trickle_out(blob.chunks(start, end), fault.delay or TRICKLE_PAUSE)
            return
        half = start + (end - start) // 2
        for chunk in blob.chunks(start, end if kind is None else half):
            self.wfile.write(chunk)
        if kind == "stall" and fault is not None:
            if sim._stopping.wait(fault.delay):
                self._abort()
                return
            for chunk in blob.chunks(half, end):
                self.wfile.write(chunk)
        elif kind == "drop":
            self._drain()
            self._abort()
        elif kind in ("truncate", "no_length"):
            self.close_connection = True  # a clean FIN after a short body


class Simulator:
    """Fake task sources + media host on a real socket; see the module docstring."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 tokens: dict[str, str] | None = None, seed: int = 0,
                 range_support: bool = True, media_base_url: str | None = None) -> None:
        self.host, self.port = host, port
        # Payload media URLs point here instead of this server's own /media/ endpoint; the
        # benchmark serves the same /media/g0/<clip>.<ext> paths from nginx with this.
        self.media_base_url = media_base_url.rstrip("/") if media_base_url else None
        self.tokens = {name: DEFAULT_TOKEN for name in provider_names()} | dict(tokens or {})
        self.range_support = range_support
        self._rng = random.Random(seed)
        self._epoch = int(time.time()) - 3600
        self._lock = threading.RLock()
        self._tasks: dict[tuple[str, str], SimTask] = {}
        self._clips: dict[str, SimClip] = {}
        self._faults: list[Fault] = []
        self._requests: list[RequestRecord] = []
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> Simulator:
        """Bind and serve in a daemon thread; the port is known once this returns."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
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
        self._stopping.set()
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

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

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

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

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
        TRICKLE_PAUSE).
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

    def _take_fault(self, target: str, provider: str, source: str,
                    clip_id: str | None) -> Fault | None:
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

    def _poll(self, source: str, ids: list[str], weird: str | None, *,
              batch: bool = False) -> list[Any]:
        with self._lock:
            renderer = media.Renderer(self.media_base_url or self.base_url)
            return media.poll_tasks(self._tasks, source, ids, renderer, weird, batch=batch)

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
