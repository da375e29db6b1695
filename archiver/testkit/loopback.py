"""A tiny HTTP server on 127.0.0.1 whose routes a test writes as functions: bodies, redirects,
trickles and resets that the simulator does not produce."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable



# ---------------------------------------------------------------------------- a tiny loopback server

Route = Callable[["_LoopbackHandler"], None]


class _LoopbackHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_LoopbackServer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet on purpose
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.owner.seen.append((self.command, path, {k.lower(): v for k, v in self.headers.items()}, body))
        route = self.server.owner.routes.get(path, self.server.owner.fallback)
        if route is None:
            self.reply(404, b'{"error": "no such route"}', "application/json")
        else:
            route(self)

    do_POST = do_GET

    def reply(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None,
              length: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def file(self, data: bytes, ctype: str) -> None:
        """`data` with Range support, like a CDN."""
        start, status, headers = 0, 200, {"Accept-Ranges": "bytes"}
        wanted = self.headers.get("Range", "")
        if wanted.startswith("bytes=") and wanted[6:].rstrip("-").isdigit():
            start = int(wanted[6:].rstrip("-"))
            if start >= len(data):
                self.reply(416, b"", ctype, {"Content-Range": f"bytes */{len(data)}"})
                return
            status, headers["Content-Range"] = 206, f"bytes {start}-{len(data) - 1}/{len(data)}"
        self.reply(status, data[start:], ctype, headers)


class QuietHTTPServer(ThreadingHTTPServer):
    """A test server whose clients hanging up (refused downloads, stalls provoked on purpose) are
    routine; a bug in a handler still prints. Printed from its own thread, such a traceback lands
    outside any test's captured output."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _LoopbackServer(QuietHTTPServer):
    def __init__(self, owner: "Loopback") -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _LoopbackHandler)


class Loopback:
    """An HTTP server on 127.0.0.1 for what the simulator cannot do (routes are functions)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.fallback: Route | None = None  # answers every path without a route of its own
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self._server = _LoopbackServer(self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> "Loopback":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def hits(self, path: str) -> int:
        return sum(1 for _m, p, _h, _b in self.seen if p == path)

    def redirect_loop(self, path: str) -> None:
        """`path` redirects to itself forever."""
        self.routes[path] = lambda h: h.reply(302, b"", "text/plain", {"Location": self.url(path)})
