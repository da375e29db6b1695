"""Fetching media into the library: streamed, verified, resumable, and crash-safe.

A file is written to `<final>.part`, checked (byte count, first bytes, audio length), hashed,
tagged, fsynced and only then moved into place with `os.replace`; the database records it as
downloaded after that. A final path therefore never holds a partial or unverified file, and a
crash at any moment leaves at worst a `.part` that the next run resumes or removes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, BinaryIO, Callable, Mapping
from urllib.parse import urljoin, urlsplit

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from . import __version__, curl_file
from ._httpx import httpx
from .config import Config
from .errors import DownloadError, LinkExpired, RefusedURL, TransientError, WrongContent
from .fs import (HASH_BLOCK, STORAGE_ERRNOS, append_fd, block_size, fsync_fd, new_fd, open_read, regular_size,
                 start_writeback, storage_error)
from .media import AUDIO, expected_kinds, id3_extent, looks_complete, sniff
from .transport import SINK, THROUGHPUT, CurlTransport, MediaClient, Stalled




@dataclass(frozen=True)
class Tuning:
    """Knobs of the transfer loop; tests shrink them to provoke stalls quickly."""

    attempts: int = 5  # transfers per asset per run (resumes included)
    refreshes: int = 2  # re-polls per asset for an expired link
    backoff: float = 0.5
    stall_window: float = 30.0  # seconds over which throughput is judged
    min_speed: float = 1024.0  # bytes/s below which a transfer counts as stalled


@dataclass
class Fetched:
    """A complete, verified `.part` file ready to be tagged and moved into place."""

    part: Path
    size: int
    sha256: str
    kind: str  # sniffed format: "mp3", "m4a", "jpg", ...
    unsized: bool = False  # the body came without Content-Length: its end is confirmed separately
    prelude: bytes = b""  # tags to write before the body (see Transfer.prelude); sha256 covers them
    skip: int = 0  # with a prelude: the body's own leading bytes it replaces (the source's tag)
    length: float | None = None  # playable seconds (Transfer.measure; None: unknown or not measured)


@dataclass
class Transfer:
    url: str
    part: Path
    expect: str  # asset kind: audio | image | video
    max_size: int
    tuning: Tuning = field(default_factory=Tuning)
    on_total: Callable[[int | None, int], None] | None = None  # (size, resumed-from) once headers arrive
    hash: bool = True  # False when the caller rewrites the file and hashes it after (tagged audio)
    # Given the body's first bytes, how many of them are its own ID3 tag and the file system's
    # block, the tags the file is to start with instead (None: none). The `.part` still gets the
    # body as sent (a resume needs that); the hash is the finished file's, prelude first.
    prelude: Callable[[bytes, int, int], bytes | None] | None = None
    # Done in the transfer's thread once the body is complete, so the file is not handed to
    # another thread for it: fsync the `.part` (a file kept as sent), measure its playable length.
    durable: bool = False
    measure: Callable[[Path], float | None] | None = None
    offset: int | None = None  # what the `.part` holds, when the caller looked already (first attempt only)


def check_url(url: str | None) -> str:
    """Only http(s) URLs naming a host and a valid port: anything else fails its asset alone
    (a URL httpx cannot even parse raises ValueError, which must not stop the whole run)."""
    if not url:
        raise RefusedURL("no URL")
    try:
        parts = urlsplit(url)
        _ = parts.port  # ValueError when it is not a number or out of range
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        raise RefusedURL("refusing to fetch a malformed URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise RefusedURL(f"refusing to fetch a {scheme or 'relative'}: URL (only http and https)")
    if not parts.hostname:
        raise RefusedURL("refusing to fetch a URL without a host")
    return url


def next_hop(url: str, location: str) -> str:
    """Where a redirect leads, checked like the first URL: a Location of file:, data:, a port over
    65535 or no URL at all fails its file alone, for good."""
    try:
        target = urljoin(url, location)
    except ValueError:  # "http://[::1": not a URL
        raise RefusedURL("refusing to follow a redirect to a malformed URL") from None
    return check_url(target)


def media_client(config: Config, jobs: int) -> MediaClient:
    """libcurl for the bytes, at most 5 redirects each checked by `next_hop`, httpx's types for
    the responses and errors (see `transport`). Proxy variables are read by libcurl itself."""
    with contextlib.suppress(curl_file.Unavailable):  # loaded here rather than in a transfer's thread
        curl_file.load()
    return MediaClient(CurlTransport(jobs=jobs),
                       headers={"User-Agent": f"archiver/{__version__}", "Accept-Encoding": "identity"},
                       connect=config.connect_timeout, read=config.read_timeout, redirects=5, next_hop=next_hop)


class _PartSink:
    """The body straight into `job.part`, written by libcurl in the transfer's worker thread (see
    `transport`). There, as it grows, it is held to max_file_size and its first bytes to the
    expected kind (stopping an HTML page early); once it is complete it is hashed (read back from
    the page cache, the prelude in front of it), a cover fsynced and audio measured. The event
    loop only hears of progress and of the end, and checks its size and first bytes again then.
    Whatever arrived before a break is in the `.part` for the next attempt to resume after."""

    def __init__(self, job: Transfer, offset: int, on_bytes: Callable[[int], None]) -> None:
        self.job = job
        self.offset = offset  # what the `.part` held when the request went out
        self.on_bytes = on_bytes
        self.fd = -1
        self.reader: BinaryIO | None = None  # the `.part` again, to read back what libcurl wrote
        self.start = 0  # where this response's body begins in the `.part`
        self.resumed = False
        self.size = 0
        self.head = b""
        self.digest = ""
        self.error: BaseException | None = None  # why the sink stopped the transfer
        self.prelude = b""
        self.skip = 0
        self.length: float | None = None

    def accept(self, status: int, headers: list[tuple[bytes, bytes]]) -> int | None:
        if status not in (200, 206) or self.error is not None:
            return None
        response = httpx.Response(status, headers=headers)
        resumed = _resumed(response, self.offset)
        offset = self.offset if resumed else 0
        total = _total_from(response, offset)
        if total is not None and total > self.job.max_size:
            return None  # `fetch_once` refuses it from the same headers
        self._close_files()  # a second final head in one transfer (a proxy's, say): this one counts
        try:
            self.job.part.parent.mkdir(parents=True, exist_ok=True)
            self.fd = append_fd(self.job.part) if resumed else new_fd(self.job.part)
            self.reader = open_read(self.job.part)
        except BaseException as exc:  # noqa: BLE001 - handed to `fetch_once`, which raises it
            self.error = exc
            return None
        self.resumed, self.start = resumed, offset
        return self.fd

    def received(self, nbytes: int) -> bool:
        if self.start + nbytes > self.job.max_size and self.error is None:
            self.error = RefusedURL(f"file grew over max_file_size ({self.job.max_size} bytes)")
        if self.error is None and not self.resumed and not self.head and self.fd >= 0:
            try:  # once the first bytes reach the file (stdio holds the first 256 KiB back)
                if os.fstat(self.fd).st_size >= 64:
                    head = self._read(0, 64)
                    _check_head(head, self.job.expect, final=False)
                    self.head = head
            except BaseException as exc:  # noqa: BLE001 - handed to `fetch_once`, which raises it
                self.error = exc
        return self.error is None

    def close(self, complete: bool, write_error: OSError | None) -> None:
        if self.fd < 0:
            return
        try:
            self.error = self.error or write_error
            if complete and self.error is None:
                self._landed(self.fd)
        except BaseException as exc:  # noqa: BLE001 - handed to `fetch_once`, which raises it
            self.error = exc
        finally:
            self._close_files()

    def _close_files(self) -> None:
        fd, self.fd = self.fd, -1
        reader, self.reader = self.reader, None
        if reader is not None:
            reader.close()
        if fd >= 0:
            try:
                os.close(fd)
            except OSError as exc:
                self.error = self.error or exc

    def _read(self, at: int, size: int) -> bytes:
        assert self.reader is not None
        return os.pread(self.reader.fileno(), size, at)

    def _landed(self, fd: int) -> None:
        """The whole body is in: its size, first bytes, prelude and hash, from the file. The disk
        starts writing it meanwhile, for the fsync or tagging that follows."""
        start_writeback(fd)
        self.size = os.fstat(fd).st_size
        if self.size > self.job.max_size:
            raise RefusedURL(f"file grew over max_file_size ({self.job.max_size} bytes)")
        fh = self.reader
        assert fh is not None
        fh.seek(0)
        self.head = fh.read(64)
        extent = id3_extent(self.head[:10]) if self.job.prelude is not None else None
        start = 0
        if extent is not None and extent <= PRELUDE_MAX_TAG and self.size >= extent + PRELUDE_LOOKAHEAD:
            fh.seek(0)
            lead = fh.read(extent + PRELUDE_LOOKAHEAD)
            prelude = self.job.prelude(lead, extent, block_size(fd)) if self.job.prelude else None
            if prelude is not None:
                self.prelude, self.skip, start = prelude, extent, extent
        if self.job.hash or self.prelude:
            digest = hashlib.sha256(self.prelude)
            fh.seek(start)
            while block := fh.read(HASH_BLOCK):
                digest.update(block)
            self.digest = digest.hexdigest()
        if self.job.durable:
            fsync_fd(fd)
        if self.job.measure is not None:
            self.length = self.job.measure(self.job.part)

    def advanced(self, nbytes: int) -> None:
        self.on_bytes(nbytes)


def _resumed(response: httpx.Response, offset: int | None) -> bool:
    """A 206 that goes on from the `offset` bytes we hold; one starting at 0 (to a request sent
    without Range) is the whole file, written afresh."""
    return bool(offset) and response.status_code == 206 \
        and _content_range_start(response.headers.get("content-range")) == offset


def _content_range_start(value: str | None) -> int | None:
    """Start offset from `Content-Range: bytes START-END/TOTAL`."""
    if not value or not value.startswith("bytes "):
        return None
    return _number(value[6:].split("-", 1)[0])


def _number(text: str | None) -> int | None:
    """A header's decimal number; None for anything else (`str.isdigit` passes "²", which int refuses)."""
    return int(text) if text and text.isascii() and text.isdecimal() else None


def _total_from(response: httpx.Response, offset: int) -> int | None:
    """The whole file's size: stated by Content-Range (206, or 416 `bytes */N`), else
    Content-Length (plus the offset a 206 starts at)."""
    if response.status_code in (206, 416):
        total = _number(response.headers.get("content-range", "").rpartition("/")[2])
        if total is not None:
            return total
        if response.status_code == 416:
            return None  # its Content-Length is the error body's
    length = _number(response.headers.get("content-length"))
    return None if length is None else length + (offset if response.status_code == 206 else 0)


PRELUDE_LOOKAHEAD = 16  # bytes after the source's tag a prelude looks at (the first frame's header)
PRELUDE_MAX_TAG = 8 * 1024 * 1024  # a bigger source tag is not held in memory: tag_file rewrites it
PREFIX_PROBE = 64 * 1024  # bytes of a leftover `.part` compared with the server's before resuming


async def _same_prefix(client: MediaClient, job: Transfer, offset: int) -> bool:
    """Whether a leftover `.part` ends with what the server has at those offsets.

    A `.part` is named after its final path, so one left by another clip's killed transfer under
    the same name (two songs titled alike), or a file changed upstream, would otherwise be
    resumed into a splice of two songs. One small ranged request settles it; a server that cannot
    answer it is left to the main request's own checks (a 200 there starts over anyway).
    """
    start = max(0, offset - PREFIX_PROBE)
    want = offset - start
    body = bytearray()
    try:
        async with client.stream(job.url, headers={"Range": f"bytes={start}-{offset - 1}"}) as response:
            if response.status_code != 206 or _content_range_start(response.headers.get("content-range")) != start:
                return True
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) >= want:
                    break
    except (httpx.HTTPError, httpx.InvalidURL):
        return True
    with open_read(job.part) as fh:
        fh.seek(start)
        ours = fh.read(want)
    return bytes(body[:want]) == ours


async def fetch_once(client: MediaClient, job: Transfer, on_bytes: Callable[[int], None]) -> Fetched:
    """One HTTP transfer into `job.part`, resuming it when the server honours Range."""
    # A link planted at the `.part` is refused, never followed; asked from a worker thread, as a
    # lookup in a folder that other transfers are writing into can wait on the disk.
    offset = job.offset if job.offset is not None else await asyncio.to_thread(regular_size, job.part) or 0
    job.offset = None  # a later attempt looks again
    if offset and not await _same_prefix(client, job, offset):
        job.part.unlink(missing_ok=True)  # not this file's beginning (another clip's, or changed upstream)
        offset = 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    sink = _PartSink(job, offset, on_bytes)
    extensions = {THROUGHPUT: (job.tuning.min_speed, job.tuning.stall_window), SINK: sink}
    try:
        try:
            async with client.stream(job.url, headers=headers, extensions=extensions) as response:
                total = _check_response(response, job, offset)
                async for _chunk in response.aiter_raw():
                    pass  # the sink takes the body in the transfer's thread: this waits for the end
        except httpx.HTTPError:
            if sink.error is None:
                raise
        if sink.error is not None:
            raise sink.error
    except httpx.TimeoutException as exc:  # Stalled: too few bytes over a window, not none at all
        raise TransientError("media", str(exc) if isinstance(exc, Stalled) else "timed out (stalled)") from None
    except httpx.TooManyRedirects:
        raise DownloadError("too many redirects (more than 5)") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):  # a Location of data:, about:, mailto:
        raise RefusedURL("refusing to follow a redirect to a malformed or non-http(s) URL") from None
    except httpx.TransportError as exc:
        raise TransientError("media", f"transfer broken ({type(exc).__name__})") from None
    except RefusedURL:
        job.part.unlink(missing_ok=True)  # an oversized file is never resumed: keep none of it
        raise
    except OSError as exc:
        if exc.errno in STORAGE_ERRNOS:
            job.part.unlink(missing_ok=True)
            raise storage_error(exc, job.part) from None
        raise
    fetched = _finished(job, sink, total)
    if fetched.unsized:
        await _confirm_end(client, job, fetched.size)
    return fetched


def _check_response(response: httpx.Response, job: Transfer, offset: int) -> int | None:
    """The final response's status and stated size, judged as the sink judged them: the size."""
    status = response.status_code
    if status in (403, 404, 410):
        raise LinkExpired(f"media link answered HTTP {status}")
    if status == 416 and offset:
        job.part.unlink(missing_ok=True)  # our .part is longer than the file: start over
        raise TransientError("media", "range not satisfiable; restarting")
    if status == 429 or status >= 500:
        raise TransientError("media", f"HTTP {status}", status_code=status)
    if status not in (200, 206):
        raise DownloadError(f"media host answered HTTP {status}")
    resumed = _resumed(response, offset)
    total = _total_from(response, offset if resumed else 0)
    if job.on_total is not None:
        job.on_total(total, offset if resumed else 0)
    if total is not None and total > job.max_size:
        raise RefusedURL(f"file is {total} bytes, over max_file_size ({job.max_size})")
    return total


def _finished(job: Transfer, sink: _PartSink, total: int | None) -> Fetched:
    """A whole body on disk: its size, its kind, and for a body without a size, its end."""
    if total is not None and sink.size != total:
        raise TransientError("media", f"got {sink.size} of {total} bytes")
    if sink.size == 0:
        raise TransientError("media", "empty body")
    kind = _check_head(sink.head, job.expect, final=True)
    if total is None and kind and not looks_complete(_tail(job.part), kind):
        raise TransientError("media", "body ended early (no Content-Length and no end marker)")
    return Fetched(job.part, sink.size, sink.digest, kind or "bin", unsized=total is None,
                   prelude=sink.prelude, skip=sink.skip, length=sink.length)


async def _confirm_end(client: MediaClient, job: Transfer, size: int) -> None:
    """A body without Content-Length ends when the connection closes, which is also how a cut
    one ends; formats whose header states the full length (FLAC, say) cannot tell the two apart.
    Asking for what follows it (`Range: bytes=<size>-`) can: a 416 naming this size means the
    file is whole, a 206 or a longer stated size means it was cut, and the `.part` is resumed."""
    try:
        async with client.stream(job.url, headers={"Range": f"bytes={size}-"}) as response:
            status = response.status_code
            real = _total_from(response, size) if status in (200, 206, 416) else None
    except (httpx.HTTPError, httpx.InvalidURL):
        return  # the server cannot say; the format's own end check already passed
    if real is None and status == 416:
        real = size  # nothing lies at or past this offset
    if real is not None and real > size:
        raise TransientError("media", f"body ended early (got {size} of {real} bytes, no Content-Length)")
    if real is not None and real < size:
        job.part.unlink(missing_ok=True)
        raise TransientError("media", f"got {size} bytes, the server says the file has {real}; restarting")


def _tail(path: Path, size: int = 64) -> bytes:
    with open_read(path) as fh:
        fh.seek(max(0, os.fstat(fh.fileno()).st_size - size))
        return fh.read()


def _check_head(head: bytes, expect: str, *, final: bool) -> str | None:
    """Reject bodies that are not the expected kind of media (an HTML error page, say)."""
    if len(head) < 16 and not final:
        return None
    kind = sniff(head)
    if kind not in expected_kinds(expect):
        what = kind or "unrecognised data"
        raise WrongContent("media", f"expected {expect}, got {what}")
    return kind


class _NewLink(Exception):
    """The link expired and the task gave a fresh one: try again at once, from scratch."""


async def fetch(client: MediaClient, job: Transfer, *, refresh: Callable[[], Awaitable[str | None]],
                on_bytes: Callable[[int], None], warn: Callable[[str], None]) -> Fetched:
    """Transfer with retries and resume; re-polls for a fresh URL when the link expired.

    The same retry engine as the API calls (tenacity): `job.tuning.attempts` transfers at most,
    with jittered exponential back-off between broken ones and none after a fresh link.
    """
    refreshes = 0

    async def once() -> Fetched:
        nonlocal refreshes
        check_url(job.url)
        try:
            return await fetch_once(client, job, on_bytes)
        except LinkExpired as exc:
            if refreshes >= job.tuning.refreshes:
                raise DownloadError(str(exc)) from None
            refreshes += 1
            fresh = await refresh()
            if not fresh or fresh == job.url:
                raise DownloadError(str(exc)) from None
            job.url = fresh
            job.part.unlink(missing_ok=True)  # another URL may be another file: no resume across it
            raise _NewLink(str(exc)) from None
        except WrongContent:  # what we stored is garbage: no resume from it
            job.part.unlink(missing_ok=True)
            raise

    def pause(state: RetryCallState) -> float:
        if state.outcome is not None and isinstance(state.outcome.exception(), _NewLink):
            return 0.0
        return job.tuning.backoff * (2 ** (state.attempt_number - 1)) * random.uniform(0.5, 1.0)

    def retrying(state: RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome is not None else None
        if isinstance(failure, TransientError):
            warn(f"{job.part.name}: {failure}; retrying")

    engine = AsyncRetrying(retry=retry_if_exception_type((TransientError, _NewLink)),
                           stop=stop_after_attempt(job.tuning.attempts), wait=pause,
                           before_sleep=retrying, reraise=True)
    try:
        async for attempt in engine:
            with attempt:
                return await once()
    except (TransientError, _NewLink) as exc:
        raise DownloadError(str(exc)) from None
    raise AssertionError("unreachable")  # pragma: no cover


def guess_ext(url: str | None, kind: str) -> str:
    """Extension from the URL path, for naming before the bytes arrive."""
    try:
        suffix = Path(urlsplit(url or "").path).suffix.lower().lstrip(".")
    except ValueError:  # not a URL ("http://[::1"): `check_url` refuses it when the fetch starts
        suffix = ""
    aliases: Mapping[str, str] = {"jpeg": "jpg", "mpeg": "mp3", "mp4a": "m4a"}
    suffix = aliases.get(suffix, suffix)
    if suffix in expected_kinds(kind) and (suffix in AUDIO) == (kind == "audio"):
        return suffix  # anything else could take a sibling's name (the song's, the cover's, the lyrics')
    return {"audio": "mp3", "image": "jpg", "video": "mp4"}[kind]
