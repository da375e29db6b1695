"""Archived files over HTTP: by clip, from the path the database records, never from the request.

A request names a clip (source and id); the database says which file is its audio or cover. It is
opened folder by folder from the library root with fs.read_fd_beneath, which follows no link on
the way and refuses anything but a regular file at the end. The
bytes are then read from that descriptor, so what was checked is what is sent (Starlette's
FileResponse would reopen the path and follow links). Ranges make seeking in <audio> work.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from ..errors import UnsafePath
from ..fs import read_fd_beneath

CHUNK = 256 * 1024
CONTENT_TYPES: dict[str, str] = {
    "mp3": "audio/mpeg", "m4a": "audio/mp4", "mp4": "audio/mp4", "aac": "audio/aac", "flac": "audio/flac",
    "ogg": "audio/ogg", "opus": "audio/ogg", "oga": "audio/ogg", "wav": "audio/wav", "webm": "audio/webm",
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif",
}
_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})")  # past 10^18 bytes: no file, and no int to parse


def content_type(path: str) -> str:
    return CONTENT_TYPES.get(path.rsplit(".", 1)[-1].lower(), "application/octet-stream")


def open_archived(root: Path, relative: str) -> tuple[int, int]:
    """(descriptor, size) of an archived file; FileNotFoundError or UnsafePath when it may not be sent."""
    fd = read_fd_beneath(root, relative)
    return fd, os.fstat(fd).st_size


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """[start, end) of a single `bytes=` range; None to send it all; "unsatisfiable" for a 416."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.replace(" ", ""))
    if not match or not (match[1] or match[2]):
        return None  # a syntax we do not serve (several ranges, other units): the whole file
    if not match[1]:
        suffix = int(match[2])
        return (max(0, size - suffix), size) if suffix and size else "unsatisfiable"
    start = int(match[1])
    if match[2] and int(match[2]) < start:
        return None  # an invalid range (last before first) is ignored: the whole file (RFC 9110 14.1.1)
    end = min(size, int(match[2]) + 1) if match[2] else size
    if start >= size or end <= start:
        return "unsatisfiable"
    return start, end


class FdResponse(Response):
    """The bytes [start, end) of an open descriptor, read in a worker thread; closes it when done."""

    def __init__(self, fd: int, start: int, end: int, status_code: int, headers: dict[str, str]) -> None:
        super().__init__(status_code=status_code, headers={**headers, "content-length": str(end - start)})
        self.fd, self.start, self.end = fd, start, end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            if scope.get("method") == "HEAD":
                await send({"type": "http.response.body", "body": b""})
                return
            position = self.start
            while position < self.end:
                size = min(CHUNK, self.end - position)
                block = await anyio.to_thread.run_sync(os.pread, self.fd, size, position)
                if not block:
                    break  # the file shrank under us: end the body here rather than pad it
                position += len(block)
                await send({"type": "http.response.body", "body": block, "more_body": position < self.end})
            if position < self.end:
                await send({"type": "http.response.body", "body": b""})
        finally:
            os.close(self.fd)


def file_response(root: Path, relative: str | None, range_header: str | None, *,
                  download: bool = False, extra: dict[str, Any] | None = None) -> Response:
    """The archived file as a 200 or 206; 404 when the database or the disk has none; 416 for a bad range."""
    if not relative:
        return PlainTextResponse("no such file in the library", status_code=404)
    try:
        fd, size = open_archived(root, relative)
    except (OSError, UnsafePath):  # missing, unreadable, a link or not a regular file: nothing to send
        return PlainTextResponse("no such file in the library", status_code=404)
    headers = {"accept-ranges": "bytes", "content-type": content_type(relative),
               "cache-control": "private, max-age=3600", **(extra or {})}
    if download:
        name = relative.rsplit("/", 1)[-1]
        headers["content-disposition"] = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
    try:
        wanted = parse_range(range_header, size)
    except BaseException:
        os.close(fd)
        raise
    if wanted == "unsatisfiable":
        os.close(fd)
        return Response(status_code=416, headers={"content-range": f"bytes */{size}", "accept-ranges": "bytes"})
    if wanted is None:
        return FdResponse(fd, 0, size, 200, headers)
    assert isinstance(wanted, tuple)
    start, end = wanted
    headers["content-range"] = f"bytes {start}-{end - 1}/{size}"
    return FdResponse(fd, start, end, 206, headers)
