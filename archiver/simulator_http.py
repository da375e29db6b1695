"""The simulator's HTTP side: a threaded server whose handler parses requests, routes them to the
sources' `sim_*` hooks and applies queued faults to the answers.

It holds no state of its own. `archiver.simulator` owns the tasks, clips, queued faults and
request log and hands the server a `Backend`, so this module never imports it back.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import re
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any, Iterable, Protocol
from urllib.parse import parse_qsl, unquote

from archiver import simulator_media as media
from archiver.simulator_media import Blob, provider_names

__all__ = ["Backend", "FaultSpec", "MediaAnswer", "Server", "TRICKLE_PAUSE"]

TRICKLE_PAUSE = 0.25  # seconds between trickled bytes unless the fault gives a delay: 4 B/s
WEIRD_STATUS = "WEIRD_STATE"


class FaultSpec(Protocol):
    """The parts of a queued fault that shape an answer."""

    @property
    def kind(self) -> str: ...

    @property
    def retry_after(self) -> str | float | None: ...

    @property
    def delay(self) -> float: ...


@dataclass(frozen=True)
class MediaAnswer:
    """The state's verdict on a media path: a canned error (`error`, with the fault that caused
    it if any), or a blob to serve under `fault`."""

    provider: str | None
    error: tuple[int, bytes] | None = None
    blob: Blob | None = None
    fault: FaultSpec | None = None


class Backend(Protocol):
    """What the handler needs from the simulator's state; every call is thread-safe."""

    @property
    def range_support(self) -> bool: ...

    @property
    def stopping(self) -> threading.Event:
        """Set while the simulator stops: stalled and trickling answers give up."""
        ...

    def token(self, provider: str) -> str: ...

    def track(self, conn: socket.socket, *, add: bool) -> None:
        """Note an open connection (or its end), so stopping can shut it."""
        ...

    def record(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               body: Any, status: int | None, target: str, provider: str | None,
               fault: str | None) -> None: ...

    def take_fault(self, target: str, provider: str, source: str,
                   clip_id: str | None) -> FaultSpec | None:
        """The next queued fault matching this request, counted as used."""
        ...

    def poll(self, source: str, ids: list[str], weird: str | None, *, batch: bool) -> list[Any]:
        """Advance and render the tasks `ids` of `source` as one poll sees them."""
        ...

    def find_media(self, path: str) -> MediaAnswer | None:
        """Resolve a media path, applying state faults (expire, gone); None when unknown."""
        ...


class Server(ThreadingHTTPServer):
    """One thread per connection, so a stalled or trickled answer holds up no other request."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], backend: Backend) -> None:
        self.backend = backend
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
    server: Server
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
        self.server.backend.track(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.backend.track(self.connection, add=False)

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
        stopping = self.server.backend.stopping
        for chunk in chunks:
            for at in range(len(chunk)):
                self.wfile.write(chunk[at:at + 1])  # OSError once the client is gone: ends the request
                if stopping.wait(pause):
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
                if not struct.unpack("i", queued)[0] or self.server.backend.stopping.wait(0.002):
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
        self.server.backend.record(self.command, path, query, headers, self._body, self._status,
                                   target, self._provider, self._fault)

    def _fault_answer(self, fault: FaultSpec, provider: str | None) -> bool:
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
        elif kind == "stall" and self.server.backend.stopping.wait(fault.delay):
            self._abort()  # stopping: give up on the request
        elif kind == "trickle":
            self._trickle = fault.delay or TRICKLE_PAUSE
            return False  # the normal answer, slowly
        else:
            return False
        return True

    # -- API --------------------------------------------------------------------------------------

    def _api(self, provider: str, parts: list[str], query: dict[str, str]) -> None:
        backend, body, rest = self.server.backend, self._body, parts[1:]
        data = body if isinstance(body, dict) else {}
        hooks = media.hooks_of(provider)
        routed = ((source, source.sim_route(self.command, rest, query, data)) for source in hooks)
        source, call = next(((s, c) for s, c in routed if c is not None), (hooks[0], None))
        fault = backend.take_fault("api", provider, source.name if call else provider, None)
        if fault is not None and self._fault_answer(fault, provider):
            return
        weird = WEIRD_STATUS if fault is not None and fault.kind == "unknown_status" else None
        if self.headers.get("Authorization", "").strip() != f"Bearer {backend.token(provider)}":
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
        found = backend.poll(source.name, ids, weird, batch=not call.single)
        if not call.single:
            self._json(200, source.sim_batch(found))
        elif not found:
            self._json(*source.sim_not_found())
        else:
            self._json(200, source.sim_single(found[0]))

    # -- media ------------------------------------------------------------------------------------

    def _media(self, parts: list[str]) -> None:
        if self.command not in ("GET", "HEAD"):
            self._json(405, {"error": "method not allowed"}, {"Allow": "GET, HEAD"})
            return
        found = self.server.backend.find_media("/" + "/".join(parts))
        if found is None:
            self._send(*media.MISSING, "application/xml; charset=utf-8")
            return
        self._provider, fault = found.provider, found.fault
        if found.error is not None or found.blob is None:
            self._fault = fault.kind if fault is not None else None
            self._send(*(found.error or media.MISSING), "application/xml; charset=utf-8")
            return
        if fault is not None and fault.kind not in ("stall", "trickle", "drop", "truncate", "no_length") \
                and self._fault_answer(fault, None):
            return
        self._serve_blob(found.blob, fault)

    def _serve_blob(self, blob: Blob, fault: FaultSpec | None) -> None:
        """Send a blob or a Range of it; body faults cut, stall or reset it midway."""
        backend, size = self.server.backend, blob.size
        start, end, status = 0, size, 200
        requested = self.headers.get("Range")
        if requested and backend.range_support:
            parsed = media.parse_range(requested, size)
            if parsed is not None and parsed[0] >= size:
                self._send(416, b"", "text/plain", headers={"Content-Range": f"bytes */{size}"})
                return
            if parsed is not None:
                (start, end), status = parsed, 206
        kind = fault.kind if fault is not None else None
        self._fault = kind
        latency, rate = getattr(backend, "media_latency", 0.0), getattr(backend, "media_rate", None)
        if latency and backend.stopping.wait(latency):  # the first byte of a remote CDN comes late
            self._abort()
            return
        self.send_response(status)
        self.send_header("Content-Type", blob.content_type)
        if backend.range_support:
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
        chunks = blob.chunks(start, end if kind is None else half)
        for chunk in media.paced(chunks, rate, backend.stopping) if rate else chunks:
            self.wfile.write(chunk)
        if kind == "stall" and fault is not None:
            if backend.stopping.wait(fault.delay):
                self._abort()
                return
            for chunk in blob.chunks(half, end):
                self.wfile.write(chunk)
        elif kind == "drop":
            self._drain()
            self._abort()
        elif kind in ("truncate", "no_length"):
            self.close_connection = True  # a clean FIN after a short body

