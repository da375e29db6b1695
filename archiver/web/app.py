"""The ASGI application of `archiver serve`: routes, the token and host guard, security headers.

Every request passes the guard. With a token (required off loopback) it must come as
`Authorization: Bearer`, or once as `?token=`, which is traded for an HttpOnly, SameSite=Strict
cookie (so <audio> and plain links work) and a redirect that drops it from the address bar.
Without a token the server listens on loopback only and answers only to a loopback Host, so a
web page elsewhere cannot reach it through DNS rebinding.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Callable, ContextManager
from urllib.parse import parse_qsl, quote, urlencode

from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import pages
from .views import environment

COOKIE = "archiver_token"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]


@dataclass(frozen=True)
class Settings:
    """What the app needs: where the files are, how to read the database, the token if any."""

    library: Path
    open_reader: Callable[[], ContextManager[Any]]
    token: str | None = None


class Guard:
    """Token or loopback-Host check on every request, and the security headers on every answer."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token
        # the cookie holds a digest of the token: any token fits a cookie, and the token itself
        # stays out of the browser's storage
        self.cookie = hashlib.sha256(b"archiver serve\0" + token.encode("utf-8")).hexdigest() if token else ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # the app has none: refused before any route is consulted
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        if self.token is None:
            if _hostname(headers.get("host", "")) not in LOOPBACK_HOSTS:
                await _plain(secured, 403, "this server answers only to 127.0.0.1 or localhost")
                return
            await self.app(scope, receive, secured)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        offered = [v for k, v in query if k == "token"]
        if offered:
            if not self._valid(offered[0]):
                await _plain(secured, 401, "wrong token")
                return
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            path = scope.get("raw_path") or quote(scope["path"]).encode("ascii")
            # still percent-encoded (no header injection), and never `//host` (no redirect elsewhere)
            target = "/" + path.decode("ascii", "replace").lstrip("/") + (f"?{rest}" if rest else "")
            cookie = f"{COOKIE}={self.cookie}; HttpOnly; SameSite=Strict; Path=/"
            await secured({"type": "http.response.start", "status": 303,
                           "headers": [(b"location", target.encode("latin-1", "replace")),
                                       (b"set-cookie", cookie.encode("latin-1")), (b"content-length", b"0")]})
            await secured({"type": "http.response.body", "body": b""})
            return
        bearer = headers.get("authorization", "")
        cookies = SimpleCookie()
        try:
            cookies.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is no token
            cookies = SimpleCookie()
        given = bearer[7:].strip() if bearer[:7].lower() == "bearer " else ""
        by_cookie = COOKIE in cookies and hmac.compare_digest(cookies[COOKIE].value, self.cookie)
        if not (by_cookie or self._valid(given)):
            await _plain(secured, 401, "a token is required: open the address with ?token=YOUR_TOKEN once, "
                                       "or send Authorization: Bearer YOUR_TOKEN",
                         [(b"www-authenticate", b'Bearer realm="archiver"')])
            return
        await self.app(scope, receive, secured)

    def _valid(self, given: str) -> bool:
        assert self.token is not None
        return bool(given) and hmac.compare_digest(given.encode("utf-8", "replace"), self.token.encode("utf-8"))


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0]


async def _plain(send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = (text + "\n").encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings) -> ASGIApp:
    static = Path(__file__).parent / "static"
    routes = [
        Route("/", pages.library_page),
        Route("/playlist.m3u8", pages.playlist),
        Route("/queue.json", pages.queue),
        Route("/clip/{source}/{clip_id:path}", pages.clip_page),
        Route("/audio/{source}/{clip_id:path}", pages.audio),
        Route("/cover/{source}/{clip_id:path}", pages.cover),
        Route("/download/{source}/{clip_id:path}", pages.download),
        Route("/tasks", pages.tasks_page),
        Route("/task/{source}/{task_id:path}", pages.task_page),
        Route("/stats", pages.stats_page),
        Mount("/static", StaticFiles(directory=str(static), follow_symlink=False), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={404: pages.not_found, 500: pages.server_error})
    app.state.settings = settings
    app.state.env = environment()
    return Guard(app, settings.token)
