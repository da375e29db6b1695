"""Media transfers through libcurl (pycurl), each run in a worker thread.

The provider APIs answer small JSON documents and stay on httpx. Media bodies are where the
bytes are: on the benchmark machine httpx's pure-Python HTTP/1.1 stack moved about a quarter
of what `curl` does from the same server, while libcurl's C loop runs at curl's speed and
releases the GIL while it waits. Each `perform` runs in a thread of a pool sized to `--jobs`;
the caller's `Sink` gets the final response before the first body byte and the bytes as they
arrive, in that thread. Easy handles are reused, so connections are kept alive between files.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import pycurl

from .errors import ArchiverError, DownloadError, RefusedURL, TransientError

BUFFER_SIZE = 512 * 1024  # libcurl's receive buffer: large reads, few Python callbacks
MAX_REDIRECTS = 5
REDIRECT_STATUSES = {301, 302, 303, 307, 308}


@dataclass(frozen=True)
class Response:
    """The last response of a transfer (redirects followed): what decides where its body goes."""

    status: int
    headers: dict[str, str]  # lower-case names; the last value of a repeated header


class Sink(Protocol):
    """Receives one transfer; called in the worker thread. Raising aborts the transfer and the
    exception is what `MediaClient.get` raises."""

    def start(self, response: Response) -> None: ...

    def write(self, data: bytes) -> None: ...

    def tick(self, now: float) -> None: ...  # a few times a second: judge throughput


@dataclass
class _Transfer:
    sink: Sink
    read_timeout: float
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    started: bool = False
    error: BaseException | None = None
    cancelled: bool = False
    last_activity: float = field(default_factory=time.monotonic)

    def response(self) -> Response:
        return Response(self.status, dict(self.headers))

    def on_header(self, line: bytes) -> None:
        self.last_activity = time.monotonic()
        text = line.decode("latin-1").strip()
        if text.startswith("HTTP/"):
            parts = text.split(None, 2)
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            self.headers = {}
        elif ":" in text:
            name, _, value = text.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def on_body(self, data: bytes) -> int | None:
        self.last_activity = time.monotonic()
        try:
            if not self.started:
                if self.status in REDIRECT_STATUSES and "location" in self.headers:
                    return None  # the body of a redirect being followed: not ours
                self.started = True
                self.sink.start(self.response())
            self.sink.write(data)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller, never lost in C
            self.error = exc
            return 0  # anything but len(data) makes libcurl stop with CURLE_WRITE_ERROR
        return None

    def on_progress(self, _dltotal: int, _dlnow: int, _ultotal: int, _ulnow: int) -> int:
        if self.cancelled:
            return 1
        now = time.monotonic()
        try:
            if now - self.last_activity > self.read_timeout:
                raise TransientError("media", "timed out (stalled)")
            if self.started:
                self.sink.tick(now)
        except BaseException as exc:  # noqa: BLE001
            self.error = exc
            return 1
        return 0


class MediaClient:
    """A pool of libcurl handles and the threads that drive them; `async with` closes both."""

    def __init__(self, *, user_agent: str, connect_timeout: float, read_timeout: float, jobs: int) -> None:
        self.user_agent = user_agent
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._threads = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="archiver-media")
        self._idle: list[pycurl.Curl] = []  # list.pop/append are atomic under the GIL
        self._ca_file = _ca_file()

    async def __aenter__(self) -> "MediaClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._threads.shutdown(wait=True)  # `get` never leaves a transfer running behind it
        while self._idle:
            self._idle.pop().close()

    async def get(self, url: str, sink: Sink, *, offset: int = 0) -> Response:
        """GET `url` (from byte `offset` when non-zero) into `sink`; the last response's status
        and headers come back once the body is complete. Raises `ArchiverError` subclasses."""
        transfer = _Transfer(sink, self.read_timeout)
        loop = asyncio.get_running_loop()
        running = loop.run_in_executor(self._threads, self._perform, url, offset, transfer)
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            transfer.cancelled = True  # the progress callback stops it within a second
            await asyncio.wait([running])
            if not running.cancelled():
                running.exception()  # whatever ended it was seen; asyncio would log it otherwise
            raise

    def _perform(self, url: str, offset: int, transfer: _Transfer) -> Response:
        handle = self._idle.pop() if self._idle else pycurl.Curl()
        try:
            self._configure(handle, url, offset, transfer)
            try:
                handle.perform()
            except pycurl.error as exc:
                if transfer.error is not None:
                    raise transfer.error from None
                if transfer.cancelled:
                    raise DownloadError("transfer cancelled") from None
                raise _curl_error(exc.args[0] if exc.args else -1, transfer) from None
            if transfer.error is not None:
                raise transfer.error
            return transfer.response()
        finally:
            handle.reset()  # drops the callbacks (and the sink); keeps the live connection
            self._idle.append(handle)

    def _configure(self, handle: pycurl.Curl, url: str, offset: int, transfer: _Transfer) -> None:
        handle.setopt(pycurl.URL, url)
        handle.setopt(pycurl.NOSIGNAL, 1)
        handle.setopt(pycurl.FOLLOWLOCATION, 1)
        handle.setopt(pycurl.MAXREDIRS, MAX_REDIRECTS)
        handle.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        handle.setopt(pycurl.REDIR_PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        handle.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(self.connect_timeout * 1000)))
        handle.setopt(pycurl.USERAGENT, self.user_agent)
        handle.setopt(pycurl.HTTPHEADER, ["Accept-Encoding: identity"])
        handle.setopt(pycurl.BUFFERSIZE, BUFFER_SIZE)
        if offset:
            handle.setopt(pycurl.RANGE, f"{offset}-")
        if self._ca_file:
            handle.setopt(pycurl.CAINFO, self._ca_file)
        handle.setopt(pycurl.HEADERFUNCTION, transfer.on_header)
        handle.setopt(pycurl.WRITEFUNCTION, transfer.on_body)
        handle.setopt(pycurl.NOPROGRESS, 0)
        handle.setopt(pycurl.XFERINFOFUNCTION, transfer.on_progress)


def _ca_file() -> str | None:
    """The CA bundle httpx uses (certifi's), so both clients trust the same roots."""
    try:
        import certifi
    except ImportError:  # pragma: no cover - httpx depends on certifi
        return None
    return certifi.where()


def _curl_error(code: int, transfer: _Transfer) -> ArchiverError:
    """libcurl's error codes as archiver's errors; the message names the code, never the URL."""
    if code == pycurl.E_TOO_MANY_REDIRECTS:
        return DownloadError(f"too many redirects (more than {MAX_REDIRECTS})")
    if code in (pycurl.E_UNSUPPORTED_PROTOCOL, pycurl.E_URL_MALFORMAT):
        what = "a redirect to " if transfer.status in REDIRECT_STATUSES else ""
        return RefusedURL(f"refusing to fetch {what}a non-http(s) or malformed URL")
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return TransientError("media", "timed out (stalled)")
    if code == pycurl.E_PARTIAL_FILE:
        return TransientError("media", "the connection closed before the whole body arrived")
    return TransientError("media", f"transfer broken (curl error {code})")
