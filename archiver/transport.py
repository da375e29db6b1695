"""An httpx transport that moves media bytes with libcurl (pycurl), one worker thread per transfer.

Downloads go through `MediaClient`: httpx's response and exception types, redirects followed and
checked hop by hop, timeouts; the bytes on the wire go through libcurl (`CurlTransport` is also an
httpx transport, for an `httpx.AsyncClient`). httpx's own HTTP/1.1 stack parses every read in
Python: on the benchmark machine it moved about a quarter of what `curl` does from the same
server (docs/performance.md), while libcurl's loop runs at
curl's speed and releases the GIL while it waits. The body reaches the event loop in chunks of
about CHUNK bytes (or what arrived in FLUSH_EVERY seconds, whichever comes first) through a queue
bounded at MAX_BUFFERED, so memory stays flat for any file size; a slow consumer pauses the
transfer rather than buffering it.

A request may instead hand the body to a `BodySink` (the SINK extension), which names a file
descriptor once the head is in: libcurl then writes the body into it from C (`curl_file`), with no
Python per piece and no GIL, and the event loop only hears of progress and of the end. pycurl's
write callback needed the GIL for every 16 KiB, which the rest of a sync holds much of the time;
it still does that work where libcurl cannot be driven through ctypes (`curl_file.CallbackEasy`).

Every transfer has a deadline a slow sender cannot extend: besides the read timeout (no byte at
all for that long), the worker thread measures the bytes actually received, and a response that
moves less than a minimum speed over a whole window fails with `Stalled`. A server trickling a few
bytes a second, each under the read timeout, would otherwise hold a download open forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Mapping, Protocol

import pycurl

from ._httpx import httpx
from .curl_file import CallbackEasy, FileEasy, Options, Outcome, configure, easy as new_easy

CHUNK = 1024 * 1024  # bytes handed to the event loop at a time: one queue hop per MiB
FLUSH_EVERY = 0.5  # seconds: a slow body still reaches the loop (progress, checks) this often
MIN_SPEED = 1024.0  # bytes/s: the default minimum throughput of a response
THROUGHPUT = "archiver.throughput"  # request extension: (minimum bytes/s, window in seconds)
MAX_BUFFERED = 4 * CHUNK  # per transfer: received but not yet taken by the consumer
SINK = "archiver.sink"  # request extension: a BodySink taking the body in the worker thread
RECEIVE_BUFFER = 512 * 1024  # libcurl's receive buffer: the most one read (and one callback) can carry
_END = object()


class Stalled(httpx.ReadTimeout):
    """Bytes kept coming, but fewer than the minimum speed over a whole window."""


class BodySink(Protocol):
    """Takes a response body as a file, written by libcurl in the transfer's worker thread."""

    def accept(self, status: int, headers: list[tuple[bytes, bytes]]) -> int | None:
        """Worker thread, once a final head is in: the descriptor to write this response's body
        into, or None to stop the transfer there (the response then has an empty body)."""

    def received(self, nbytes: int) -> bool:
        """Worker thread, a few times a second: the body's bytes so far; False stops the
        transfer (the sink keeps its own reason)."""

    def close(self, complete: bool, write_error: OSError | None) -> None:
        """Worker thread, when the transfer ends for any reason (also after a redirect's):
        `complete` when the whole response arrived, `write_error` when writing the body failed."""

    def advanced(self, nbytes: int) -> None:
        """Event loop: bytes the sink took since the last call (progress)."""


class _Transfer:
    """State shared by the worker thread (libcurl's callbacks) and the event loop (the stream)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float | None, *,
                 min_speed: float = 0.0, window: float | None = None, sink: BodySink | None = None) -> None:
        self.loop = loop
        self.sink = sink
        self.body_fd: int | None = None  # where the sink wants this response's body
        self.received = 0  # body bytes written for the sink so far
        self.unreported = 0  # bytes the sink took that the loop has not heard of
        self.read_timeout = read_timeout
        self.min_speed = min_speed
        self.window = window  # None: no throughput check
        self.head_done = False  # the final response's headers are complete
        self.status = 0
        self.reason = ""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head: asyncio.Future[None] = loop.create_future()  # the response's headers are in
        self.chunks: asyncio.Queue[object] = asyncio.Queue()
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.buffered = 0  # queued for the consumer, not yet taken
        self.room = threading.Condition()
        self.cancelled = False
        self.timed_out = False
        self.stalled = ""  # why the throughput check stopped the transfer
        self.last_activity = time.monotonic()
        self.last_flush = time.monotonic()
        self.window_start: float | None = None  # the response began: throughput is judged from here
        self.window_bytes = 0

    # --- worker thread -----------------------------------------------------------------------

    def on_header(self, line: bytes) -> None:
        self.last_activity = time.monotonic()
        if self.window_start is None:  # judged from the first byte of the response, on body bytes:
            self.window_start = self.last_activity  # headers trickled for a whole window are a stall too
        if line.startswith(b"HTTP/"):
            parts = line.split(None, 2)
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            self.reason = parts[2].strip().decode("latin-1") if len(parts) > 2 else ""
            self.headers = []
        elif line in (b"\r\n", b"\n"):
            if self.status >= 200:  # the end of the final headers (1xx ones are followed by more)
                self.head_done = True
                if self.sink is not None:
                    self.body_fd = self.sink.accept(self.status, self.headers)
                self.loop.call_soon_threadsafe(_resolve, self.head)
        elif b":" in line:
            name, _, value = line.partition(b":")
            self.headers.append((name.strip(), value.strip()))

    def on_body(self, data: bytes) -> int | None:
        if self.cancelled:
            return 0  # anything but len(data) stops the transfer
        self.pending.append(data)
        self.pending_bytes += len(data)
        self.window_bytes += len(data)
        now = time.monotonic()
        if self.pending_bytes >= CHUNK or now - self.last_flush >= FLUSH_EVERY:
            self.hand_over()
            with self.room:
                while self.buffered >= MAX_BUFFERED and not self.cancelled:
                    self.room.wait(0.5)  # the consumer is behind: stop reading the socket
            waited = time.monotonic() - now
            if self.window_start is not None:
                self.window_start += waited  # our own pause is not the sender's slowness
            if self.cancelled:
                return 0
        self.last_activity = time.monotonic()
        return None

    def report(self) -> None:
        self.last_flush = time.monotonic()
        if self.unreported and self.sink is not None:
            self.loop.call_soon_threadsafe(self.sink.advanced, self.unreported)
            self.unreported = 0

    def on_progress(self, _dltotal: int, _dlnow: int, _ultotal: int, _ulnow: int) -> int:
        """Called by libcurl about once a second even when nothing arrives: the clocks live here."""
        return 0 if self.on_clock(time.monotonic()) else 1

    def on_file_progress(self, received: int) -> bool:
        """A body libcurl writes into the sink's file: what it has written so far, a few times a
        second. False stops the transfer."""
        now = time.monotonic()
        if self.count(received, now) and self.sink is not None and not self.sink.received(received):
            return False
        return self.on_clock(now)

    def count(self, received: int, now: float) -> bool:
        """Whether the body grew since the last count: progress, throughput and activity."""
        if received <= self.received:
            return False
        grown, self.received = received - self.received, received
        self.window_bytes += grown
        self.unreported += grown
        self.last_activity = now
        return True

    def on_clock(self, now: float) -> bool:
        """False when the transfer is to stop: cancelled, silent past the read timeout, too slow."""
        if self.cancelled:
            return False
        if (self.pending_bytes or self.unreported) and now - self.last_flush >= FLUSH_EVERY:
            self.hand_over()
            self.report()
        if self.read_timeout is not None and now - self.last_activity > self.read_timeout:
            self.timed_out = True
            return False
        return not self.too_slow(now)

    def too_slow(self, now: float) -> bool:
        """Judge throughput over consecutive windows, on the bytes received in each."""
        if self.window is None or self.window_start is None or self.min_speed <= 0:
            return False
        elapsed = now - self.window_start
        if elapsed < self.window:
            return False
        speed = self.window_bytes / elapsed
        if speed < self.min_speed:
            self.stalled = (f"stalled: {speed:.0f} B/s over {elapsed:.0f} s "
                            f"(minimum {self.min_speed:.0f} B/s)")
            return True
        self.window_start, self.window_bytes = now, 0
        return False

    def hand_over(self) -> None:
        self.last_flush = time.monotonic()
        if not self.pending_bytes:
            return
        chunk = self.pending[0] if len(self.pending) == 1 else b"".join(self.pending)
        self.pending, self.pending_bytes = [], 0
        with self.room:
            self.buffered += len(chunk)
        self.loop.call_soon_threadsafe(self.chunks.put_nowait, chunk)

    def finish(self, error: BaseException | None) -> None:
        self.report()
        self.hand_over()  # what arrived before a break too: the download resumes after it
        self.loop.call_soon_threadsafe(self.chunks.put_nowait, error or _END)
        self.loop.call_soon_threadsafe(_resolve, self.head)

    # --- event loop ----------------------------------------------------------------------------

    def taken(self, size: int) -> None:
        with self.room:
            self.buffered -= size
            self.room.notify()

    def cancel(self) -> None:
        with self.room:
            self.cancelled = True
            self.room.notify()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Body(httpx.AsyncByteStream):
    def __init__(self, transfer: _Transfer, running: asyncio.Future[None]) -> None:
        self.transfer = transfer
        self.running = running

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            item = await self.transfer.chunks.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)
            self.transfer.taken(len(item))
            yield item

    async def aclose(self) -> None:
        """Stop the transfer if it is still running and wait until its thread lets go of it."""
        self.transfer.cancel()
        await asyncio.wait([self.running])
        if not self.running.cancelled():
            self.running.exception()  # seen here; asyncio would log it as never retrieved


class CurlTransport(httpx.AsyncBaseTransport):
    """GET requests through libcurl; easy handles are reused, so connections stay alive.

    Redirects are not followed here: httpx, or `MediaClient`, follows them and checks every hop. A response
    must move at least `min_speed` bytes/s over each `stall_window` seconds; the window is the
    request's read timeout unless a shorter one is given. A request may set both through its
    THROUGHPUT extension, `(min_speed, stall_window)`.
    """

    def __init__(self, *, jobs: int, min_speed: float = MIN_SPEED, stall_window: float | None = None) -> None:
        self._min_speed = min_speed
        self._stall_window = stall_window
        self._threads = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="archiver-media")
        self._idle: list[pycurl.Curl] = []  # list.pop/append are atomic under the GIL
        self._idle_files: list[FileEasy | CallbackEasy] = []
        self._ca_file = _ca_file()
        self._no_connect_head = _suppress_connect_headers()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method not in ("GET", "HEAD"):
            raise httpx.UnsupportedProtocol(f"the media transport only sends GET, not {request.method}")
        timeouts = request.extensions.get("timeout", {})
        headers = [f"{name}: {value}" for name, value in request.headers.items()
                   if name.lower() not in ("host", "content-length")]
        return await self._open(str(request.url), headers, request.extensions, method=request.method,
                                connect=timeouts.get("connect"), read=timeouts.get("read"), request=request)

    async def get(self, url: str, headers: Mapping[str, str], extensions: Mapping[str, Any], *,
                  connect: float | None, read: float | None) -> httpx.Response:
        """GET `url` without httpx's client (no redirect followed). Errors are httpx's exception
        types, as through `handle_async_request`."""
        return await self._open(url, [f"{name}: {value}" for name, value in headers.items()], extensions,
                                connect=connect, read=read)

    async def _open(self, url: str, headers: list[str], extensions: Mapping[str, Any], *, method: str = "GET",
                    connect: float | None, read: float | None, request: httpx.Request | None = None) -> httpx.Response:
        loop = asyncio.get_running_loop()
        min_speed, window = self._throughput(extensions, read)
        transfer = _Transfer(loop, read, min_speed=min_speed, window=window, sink=extensions.get(SINK))
        call = _Call(url, method, headers, connect, request)
        running = loop.run_in_executor(self._threads, self._perform, call, transfer)
        try:
            await asyncio.shield(transfer.head)
        except asyncio.CancelledError:
            transfer.cancel()
            await asyncio.wait([running])
            if not running.cancelled():
                running.exception()  # seen here; asyncio would log it as never retrieved
            raise
        if not transfer.head_done:  # ended before a whole response head: the error is the transfer's
            await running
            raise httpx.RemoteProtocolError("no response", request=request)
        return httpx.Response(transfer.status, headers=list(transfer.headers), stream=_Body(transfer, running),
                              request=request, extensions={"reason_phrase": transfer.reason.encode()})

    def _throughput(self, extensions: Mapping[str, Any], read_timeout: float | None) -> tuple[float, float | None]:
        """(minimum bytes/s, window): the request's own, else the transport's, the window capped
        by the read timeout, since moving next to nothing for that long is as good as silence."""
        min_speed, window = extensions.get(THROUGHPUT, (self._min_speed, self._stall_window))
        windows = [w for w in (window, read_timeout) if w is not None and w > 0]
        return float(min_speed), min(windows) if windows else None

    def _perform(self, call: _Call, transfer: _Transfer) -> None:
        transfer.last_activity = time.monotonic()  # the read timeout starts now, not when queued
        if transfer.sink is not None:
            return self._perform_into_file(call, transfer)
        handle = self._idle.pop() if self._idle else pycurl.Curl()
        error: BaseException | None = None
        try:
            configure(handle, self._options(call), transfer.on_header, transfer.on_body, transfer.on_progress)
            try:
                handle.perform()
            except pycurl.error as exc:
                error = _httpx_error(exc.args[0] if exc.args else -1, transfer, call.request)
        finally:
            handle.reset()  # drops the callbacks and options; keeps the live connection
            self._idle.append(handle)
            transfer.finish(error)
        if error is not None and not transfer.head_done:
            raise error  # before the whole head: `handle_async_request` raises it

    def _perform_into_file(self, call: _Call, transfer: _Transfer) -> None:
        """The body into the sink's descriptor, written by libcurl itself (see `curl_file`)."""
        assert transfer.sink is not None
        easy: FileEasy | CallbackEasy | None = None
        outcome: Outcome | None = None
        error: BaseException | None = None

        def line(data: bytes) -> bool:
            transfer.on_header(data)
            if not transfer.head_done or data not in (b"\r\n", b"\n"):
                return True
            if transfer.body_fd is None:
                return False  # nobody takes this body: stop here (the head is already out)
            assert easy is not None
            easy.write_into(transfer.body_fd)
            return True

        try:
            easy = self._idle_files.pop() if self._idle_files else new_easy()
            outcome = easy.perform(self._options(call), line, transfer.on_file_progress)
            transfer.count(outcome.received, time.monotonic())  # the last bytes, for progress
            if outcome.code and not (outcome.code == pycurl.E_WRITE_ERROR and transfer.body_fd is None):
                error = _httpx_error(outcome.code, transfer, call.request)
        except Exception as exc:  # noqa: BLE001 - the event loop waits on this transfer: it must end
            error = exc
        finally:
            if easy is not None:
                self._idle_files.append(easy)
            try:
                failed = outcome.write_errno if outcome is not None else 0
                transfer.sink.close(outcome is not None and outcome.code == 0,
                                    OSError(failed, os.strerror(failed)) if failed else None)
            finally:
                transfer.finish(error)
        if error is not None and not transfer.head_done:
            raise error  # before the whole head: `handle_async_request` raises it

    def _options(self, call: _Call) -> Options:
        longs = [(pycurl.NOSIGNAL, 1), (pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS),
                 (pycurl.BUFFERSIZE, RECEIVE_BUFFER)]
        if call.method == "HEAD":
            longs.append((pycurl.NOBODY, 1))
        if call.connect is not None:
            longs.append((pycurl.CONNECTTIMEOUT_MS, max(1, int(call.connect * 1000))))
        if self._no_connect_head:  # an HTTPS proxy's "200 Connection established" is not the host's head
            longs.append((self._no_connect_head, 1))
        strings = [(pycurl.URL, call.url)] + ([(pycurl.CAINFO, self._ca_file)] if self._ca_file else [])
        return Options(tuple(longs), tuple(strings), tuple(call.headers))

    async def aclose(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._threads.shutdown, True)
        while self._idle:
            self._idle.pop().close()
        while self._idle_files:
            self._idle_files.pop().close()


REDIRECTS = frozenset({301, 302, 303, 307, 308})


def _suppress_connect_headers() -> int:
    """CURLOPT_SUPPRESS_CONNECT_HEADERS (libcurl 7.54+; pycurl has no name for it), or 0 where
    this libcurl lacks it."""
    option = getattr(pycurl, "SUPPRESS_CONNECT_HEADERS", 265)
    probe = pycurl.Curl()
    try:
        probe.setopt(option, 1)
    except pycurl.error:
        return 0
    finally:
        probe.close()
    return option


class MediaClient:
    """GET requests for media straight through `CurlTransport.get`, with the client's headers,
    timeouts and redirect limit: per request, httpx's client machinery (request building, hooks,
    its own redirect loop) cost more of the event loop than the transfer itself. Each redirect's
    target goes through `next_hop` (joined to the URL it came from and checked) before it is asked."""

    def __init__(self, transport: CurlTransport, *, headers: Mapping[str, str], connect: float | None,
                 read: float | None, redirects: int, next_hop: Callable[[str, str], str]) -> None:
        self.transport = transport
        self.headers = dict(headers)
        self.connect, self.read, self.redirects, self.next_hop = connect, read, redirects, next_hop

    @contextlib.asynccontextmanager
    async def stream(self, url: str, *, headers: Mapping[str, str] | None = None,
                     extensions: Mapping[str, Any] | None = None) -> AsyncIterator[httpx.Response]:
        sent = {**self.headers, **(headers or {})}
        for _hop in range(self.redirects + 1):
            response = await self.transport.get(url, sent, extensions or {}, connect=self.connect, read=self.read)
            location = response.headers.get("location") if response.status_code in REDIRECTS else None
            if location is None:
                break
            await response.aclose()
            url = self.next_hop(url, location)
        else:
            raise httpx.TooManyRedirects(f"more than {self.redirects} redirects")
        try:
            yield response
        finally:
            await response.aclose()

    async def __aenter__(self) -> "MediaClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.transport.aclose()


@dataclass(frozen=True)
class _Call:
    """One request as the worker thread hands it to libcurl."""

    url: str
    method: str
    headers: list[str]  # "Name: value" lines
    connect: float | None  # connect timeout, seconds
    request: httpx.Request | None  # named in errors when the call came through httpx


def _ca_file() -> str | None:
    """certifi's bundle, the one httpx verifies against, so both paths trust the same roots."""
    try:
        import certifi
    except ImportError:  # pragma: no cover - httpx depends on certifi
        return None
    return certifi.where()


def _httpx_error(code: int, transfer: _Transfer, request: httpx.Request | None) -> httpx.HTTPError:
    """libcurl's error codes as httpx's exceptions; messages name the code, never the URL."""
    if transfer.stalled:
        return Stalled(transfer.stalled, request=request)
    if transfer.timed_out or code == pycurl.E_OPERATION_TIMEDOUT:
        if transfer.status:
            return httpx.ReadTimeout("no data within the read timeout", request=request)
        return httpx.ConnectTimeout("connect timed out", request=request)
    if code in (pycurl.E_COULDNT_CONNECT, pycurl.E_COULDNT_RESOLVE_HOST):
        return httpx.ConnectError(f"could not connect (curl error {code})", request=request)
    if code in (pycurl.E_UNSUPPORTED_PROTOCOL, pycurl.E_URL_MALFORMAT):
        return httpx.UnsupportedProtocol(f"unsupported or malformed URL (curl error {code})", request=request)
    if transfer.cancelled:
        return httpx.ReadError("transfer stopped by the client", request=request)
    if code == pycurl.E_PARTIAL_FILE:
        return httpx.RemoteProtocolError("peer closed the connection before the whole body arrived",
                                         request=request)
    return httpx.ReadError(f"transfer broken (curl error {code})", request=request)
