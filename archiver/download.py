"""Fetching media into the library: streamed, verified, resumable, and crash-safe.

A file is written to `<final>.part`, checked (byte count, first bytes, audio length), hashed,
tagged, fsynced and only then moved into place with `os.replace`; the database records it as
downloaded after that. A final path therefore never holds a partial or unverified file, and a
crash at any moment leaves at worst a `.part` that the next run resumes or removes.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping
from urllib.parse import urlsplit

import aiofiles
import httpx

from . import __version__
from .config import Config
from .errors import DownloadError, LinkExpired, RefusedURL, StorageError, TransientError, WrongContent
from .media import expected_kinds, looks_complete, sniff
from .report import Reporter
from .transport import MediaClient, Response

PROGRESS_STEP = 1024 * 1024  # bytes between progress reports from a transfer thread to the event loop
HASH_BLOCK = 1024 * 1024
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG}

Refresh = Callable[[str, str], Awaitable[bool]]


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
    resumed: bool = False


@dataclass
class Transfer:
    url: str
    part: Path
    expect: str  # asset kind: audio | image | video
    max_size: int
    tuning: Tuning = field(default_factory=Tuning)
    on_total: Callable[[int | None, int], None] | None = None  # (size, resumed-from) once headers arrive
    hash: bool = True  # False when the caller rewrites the file and hashes it after (tagged audio)


class _NoDigest:
    """Stands in for sha256 when the body's hash would be thrown away; hexdigest "" = not computed."""

    def update(self, data: bytes) -> None:
        pass

    def hexdigest(self) -> str:
        return ""


def check_url(url: str | None) -> str:
    """Only http(s) URLs naming a host and a valid port: anything else fails its asset alone
    (a URL that cannot even be parsed used to escape as a ValueError and stop the whole run).
    Redirect hops are held to http(s) by the transport (libcurl's REDIR_PROTOCOLS)."""
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


def media_client(config: Config, jobs: int) -> MediaClient:
    """The media transport: libcurl in `jobs` threads (see `transport`), connections kept alive."""
    return MediaClient(user_agent=f"archiver/{__version__}", connect_timeout=config.connect_timeout,
                       read_timeout=config.read_timeout, jobs=jobs)


def storage_error(exc: OSError, path: Path) -> StorageError:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return StorageError(f"cannot write {path}: {reason}; downloads stopped (nothing half-written was recorded)")


async def _hash_existing(path: Path, digest: Any) -> int:
    size = 0
    async with aiofiles.open(path, "rb") as fh:
        while block := await fh.read(HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return size


def _content_range_start(value: str | None) -> int | None:
    """Start offset from `Content-Range: bytes START-END/TOTAL`."""
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


def _total_from(status: int, headers: Mapping[str, str], offset: int) -> int | None:
    if status == 206:
        total = headers.get("content-range", "").rpartition("/")[2]
        if total.isdigit():
            return int(total)
    length = headers.get("content-length")
    if length and length.isdigit():
        return int(length) + (offset if status == 206 else 0)
    return None


async def fetch_once(client: MediaClient, job: Transfer, on_bytes: Callable[[int], None]) -> Fetched:
    """One HTTP transfer into `job.part`, resuming it when the server honours Range."""
    offset = job.part.stat().st_size if job.part.exists() else 0
    digest: Any = hashlib.sha256() if job.hash else _NoDigest()
    if offset and job.hash:
        await _hash_existing(job.part, digest)  # thrown away if the server ignores the Range
    body = _Body(job, offset, digest, asyncio.get_running_loop(), on_bytes)
    try:
        return await _stream_body(client, job, body)
    except RefusedURL:
        job.part.unlink(missing_ok=True)  # an oversized file is never resumed: keep none of it
        raise
    except OSError as exc:
        if exc.errno in STORAGE_ERRNOS:
            job.part.unlink(missing_ok=True)
            raise storage_error(exc, job.part) from None
        raise


class _Body:
    """Where one transfer's bytes go: the `.part` file, checked as they arrive.

    `start` and `write` run in the transport's worker thread; progress reaches the event loop
    through `call_soon_threadsafe`, in steps of at least PROGRESS_STEP bytes.
    """

    def __init__(self, job: Transfer, offset: int, digest: Any, loop: asyncio.AbstractEventLoop,
                 on_bytes: Callable[[int], None]) -> None:
        self.job = job
        self.offset = offset
        self.digest = digest
        self.loop = loop
        self.on_bytes = on_bytes
        self.started = False
        self.resumed = False
        self.total: int | None = None
        self.size = offset
        self.head = b""
        self.fd = -1
        self.unreported = 0
        self.window_start = time.monotonic()
        self.window_bytes = 0

    def start(self, response: Response) -> None:
        self.started = True
        status, headers = response.status, response.headers
        if status in (403, 404, 410):
            raise LinkExpired(f"media link answered HTTP {status}")
        if status == 416 and self.offset:
            self.job.part.unlink(missing_ok=True)  # our .part is longer than the file: start over
            raise TransientError("media", "range not satisfiable; restarting")
        if status == 429 or status >= 500:
            raise TransientError("media", f"HTTP {status}", status_code=status)
        if status not in (200, 206):
            raise DownloadError(f"media host answered HTTP {status}")
        self.resumed = bool(self.offset) and status == 206 \
            and _content_range_start(headers.get("content-range")) == self.offset
        if status == 206 and not self.resumed:
            self.job.part.unlink(missing_ok=True)  # a range we did not ask for: never splice it in
            raise TransientError("media", "the server answered another byte range; restarting")
        if not self.resumed:
            self.offset = self.size = 0
            self.digest = hashlib.sha256() if self.job.hash else _NoDigest()
        self.total = _total_from(status, headers, self.offset)
        if self.job.on_total is not None:
            self.loop.call_soon_threadsafe(self.job.on_total, self.total, self.offset)
        if self.total is not None and self.total > self.job.max_size:
            raise RefusedURL(f"file is {self.total} bytes, over max_file_size ({self.job.max_size})")
        self.job.part.parent.mkdir(parents=True, exist_ok=True)
        mode = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if self.resumed else os.O_TRUNC)
        self.fd = os.open(self.job.part, mode, 0o644)

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.job.max_size:
            raise RefusedURL(f"file grew over max_file_size ({self.job.max_size} bytes)")
        if not self.resumed and len(self.head) < 64:
            self.head += data[:64 - len(self.head)]
            _check_head(self.head, self.job.expect, final=False)
        self.digest.update(data)
        write_all(self.fd, data)
        self.window_bytes += len(data)
        self.unreported += len(data)
        if self.unreported >= PROGRESS_STEP:
            self.report()

    def tick(self, now: float) -> None:
        elapsed = now - self.window_start
        if elapsed >= self.job.tuning.stall_window:
            if self.window_bytes / elapsed < self.job.tuning.min_speed:
                raise TransientError("media", f"stalled ({self.window_bytes / elapsed:.0f} B/s)")
            self.window_start, self.window_bytes = now, 0

    def report(self) -> None:
        if self.unreported:
            self.loop.call_soon_threadsafe(self.on_bytes, self.unreported)
            self.unreported = 0

    def close(self) -> None:
        self.report()
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)  # fsynced by `sync_file`, after tagging: the final bytes reach the disk once


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


async def _stream_body(client: MediaClient, job: Transfer, body: _Body) -> Fetched:
    """The transfer itself, then the checks that need the whole body."""
    try:
        response = await client.get(job.url, body, offset=body.offset)
        if not body.started:  # no body at all: the status alone decides
            body.start(response)
    finally:
        body.close()
    if body.total is not None and body.size != body.total:
        raise TransientError("media", f"got {body.size} of {body.total} bytes")
    if body.size == 0:
        raise TransientError("media", "empty body")
    head = body.head
    if body.resumed:
        with job.part.open("rb") as fh:
            head = fh.read(64)
    kind = _check_head(head, job.expect, final=True)
    if body.total is None and kind and not looks_complete(_tail(job.part), kind):
        raise TransientError("media", "body ended early (no Content-Length and no end marker)")
    return Fetched(job.part, body.size, body.digest.hexdigest(), kind or "bin", body.resumed)


def _tail(path: Path, size: int = 64) -> bytes:
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - size))
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


async def fetch(client: MediaClient, job: Transfer, *, refresh: Callable[[], Awaitable[str | None]],
                on_bytes: Callable[[int], None], warn: Callable[[str], None]) -> Fetched:
    """Transfer with retries and resume; re-polls for a fresh URL when the link expired."""
    refreshes = 0
    last: Exception | None = None
    for attempt in range(job.tuning.attempts):
        check_url(job.url)
        try:
            return await fetch_once(client, job, on_bytes)
        except LinkExpired as exc:
            last = exc
            if refreshes >= job.tuning.refreshes:
                break
            refreshes += 1
            fresh = await refresh()
            if not fresh or fresh == job.url:
                break
            job.url = fresh
            job.part.unlink(missing_ok=True)  # another URL may be another file: no resume across it
        except TransientError as exc:
            last = exc
            if isinstance(exc, WrongContent):  # what we stored is garbage: no resume from it
                job.part.unlink(missing_ok=True)
            warn(f"{job.part.name}: {exc}; retrying")
            await asyncio.sleep(job.tuning.backoff * (2 ** attempt) * random.uniform(0.5, 1.0))
    raise DownloadError(str(last) if last else "download failed")


def sha256_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def fsync_path(path: Path) -> None:
    """fsync a file or directory by name (a directory's fsync makes a rename in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_file(part: Path) -> None:
    """Make a finished `.part` durable, just before `place` moves it.

    Called after the file's last write (tagging rewrites audio) rather than when the transfer
    ends: audio used to reach the disk twice, and its tagged bytes were moved into place unsynced.
    """
    try:
        fsync_path(part)
    except OSError as exc:
        if exc.errno in STORAGE_ERRNOS:
            part.unlink(missing_ok=True)  # never resume from bytes the disk refused to keep
            raise storage_error(exc, part) from None
        raise


def place(part: Path, final: Path) -> None:
    """Move a finished `.part` into place atomically and make the rename durable."""
    try:
        os.replace(part, final)
        fsync_path(final.parent)
    except OSError as exc:
        if exc.errno in STORAGE_ERRNOS:
            raise storage_error(exc, final) from None
        raise


async def download_pending(config: Config, store: Any, reporter: Reporter, *,
                           refresh: Refresh | None = None, tuning: Tuning | None = None,
                           asset_ids: list[int] | None = None) -> Any:
    """Download every pending asset of every succeeded clip (see `archive.Archiver`)."""
    from .archive import Archiver

    archiver = Archiver(config, store, reporter, refresh=refresh, tuning=tuning or Tuning())
    return await archiver.run(asset_ids=asset_ids)


def guess_ext(url: str | None, kind: str) -> str:
    """Extension from the URL path, for naming before the bytes arrive."""
    try:
        suffix = Path(urlsplit(url or "").path).suffix.lower().lstrip(".")
    except ValueError:  # not a URL ("http://[::1"): `check_url` refuses it when the fetch starts
        suffix = ""
    aliases: Mapping[str, str] = {"jpeg": "jpg", "mpeg": "mp3", "mp4a": "m4a"}
    suffix = aliases.get(suffix, suffix)
    if suffix.isalnum() and 0 < len(suffix) <= 5:
        return suffix
    return {"audio": "mp3", "image": "jpg", "video": "mp4"}[kind]
