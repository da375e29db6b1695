"""The libcurl transport under httpx, against a real HTTP server on 127.0.0.1.

End-to-end behaviour (resume, expiry, redirects, stalls through the simulator) is covered by
test_download.py; these tests pin the transport's own promises: httpx's exception types,
bounded buffering when the consumer is slow, no thread left running after a cancel, and a
minimum throughput that a server trickling bytes under the read timeout cannot get around.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import errno
import hashlib
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pycurl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver import curl_file
from archiver.download import Transfer, Tuning, fetch_once, next_hop
from archiver.errors import RefusedURL, TransientError
from archiver.testkit.loopback import QuietHTTPServer
from archiver.transport import CHUNK, MAX_BUFFERED, SINK, THROUGHPUT, CurlTransport, MediaClient, Stalled
from conftest import answer_range

BIG = 24 * 1024 * 1024
# The error page's size: far more than what loopback's socket buffers, libcurl's buffer and stdio's
# hold in flight (~12 MiB at most) before the transfer can be stopped.
HTML_PAGE = 96 * 1024 * 1024


def body(size: int) -> bytes:
    return hashlib.shake_256(b"archiver").digest(size)


MP3_HEAD = b"\xff\xfb\x90\x64" + bytes(60)  # sniffs as mp3, so download checks pass the first bytes
TRICKLE_SIZE = 100_000
WHOLE = 50_000  # bytes of /whole-206 and /odd-total
HOLD = 15.0  # seconds the /first-then-wait handler waits for the client to see its first bytes


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sent: dict[str, int] = {}
    seen_first = threading.Event()  # the client got /first-then-wait's first bytes
    held_out = threading.Event()  # /first-then-wait gave up waiting for that

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path == "/big":
            data = body(BIG)
            start, _end = answer_range(self, BIG)
            sent = 0
            try:
                for offset in range(start, BIG, 256 * 1024):
                    self.wfile.write(data[offset:offset + 256 * 1024])
                    sent += min(256 * 1024, BIG - offset)
                    Handler.sent["big"] = sent
            except OSError:
                pass
        elif self.path == "/cut":
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b"x" * 100_000)
            self.close_connection = True
        elif self.path == "/silent":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            time.sleep(3)
        elif self.path == "/trickle-head":  # a header that never ends, 10 B/s
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-Pad: ")
            try:
                for _ in range(600):
                    self.wfile.write(b"a")
                    time.sleep(0.1)
            except OSError:
                pass
            self.close_connection = True
        elif self.path.startswith("/trickle"):
            self._trickle(rate=10, size=TRICKLE_SIZE)  # 10 B/s: always under any read timeout
        elif self.path == "/slow":
            self._trickle(rate=4000, size=10_000, piece=200)  # 2.5 s at 4 kB/s
        elif self.path == "/first-then-wait":
            self.send_response(200)
            self.send_header("Content-Length", "2000")
            self.end_headers()
            self.wfile.write(MP3_HEAD + b"x" * 936)
            if not Handler.seen_first.wait(HOLD):
                Handler.held_out.set()
            self.wfile.write(b"y" * 1000)
        elif self.path == "/html":  # an error page sent as a 200, far bigger than any
            self.send_response(200)
            self.send_header("Content-Length", str(HTML_PAGE))
            self.end_headers()
            page = b"<html>" + b"x" * (256 * 1024 - 6)
            Handler.sent["html"] = 0
            try:
                for _ in range(HTML_PAGE // len(page)):
                    self.wfile.write(page)
                    Handler.sent["html"] += len(page)
            except OSError:
                pass
        elif self.path in ("/whole-206", "/odd-total"):  # a 206 to a request without Range: the whole file
            data = (MP3_HEAD + bytes(WHOLE))[:WHOLE]
            total = str(WHOLE) if self.path == "/whole-206" else "\u00b2"  # "²" passes str.isdigit
            self.send_response(206)
            self.send_header("Content-Range", f"bytes 0-{WHOLE - 1}/{total}")
            self.send_header("Content-Length", str(WHOLE))
            self.end_headers()
            self.wfile.write(data)
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/big")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(404)
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"not found")

    def _trickle(self, *, rate: int, size: int, piece: int = 1) -> None:
        """`size` bytes at `rate` bytes/s in pieces of `piece`; stops when the client hangs up."""
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        data = (MP3_HEAD + bytes(size))[:size]
        deadline = time.monotonic() + 60  # never outlive the test run by much
        try:
            for offset in range(0, size, piece):
                self.wfile.write(data[offset:offset + piece])
                if time.monotonic() > deadline:
                    break
                time.sleep(piece / rate)
        except OSError:
            pass
        self.close_connection = True


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = QuietHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def client(**kwargs: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=CurlTransport(jobs=2), trust_env=False, **kwargs)  # type: ignore[arg-type]


def test_whole_body_status_headers_and_range(server: str) -> None:
    async def main() -> tuple[int, str, bytes, int, str]:
        async with client() as http:
            response = await http.get(f"{server}/big")
            async with http.stream("GET", f"{server}/big", headers={"Range": "bytes=1000-"}) as ranged:
                tail = b"".join([chunk async for chunk in ranged.aiter_raw()])
            return (response.status_code, response.headers["content-length"], response.content,
                    ranged.status_code, ranged.headers["content-range"]) + (tail,)  # type: ignore[return-value]

    status, length, content, ranged_status, content_range, tail = asyncio.run(main())  # type: ignore[misc]
    assert (status, length) == (200, str(BIG))
    assert content == body(BIG)
    assert ranged_status == 206 and content_range == f"bytes 1000-{BIG - 1}/{BIG}"
    assert tail == body(BIG)[1000:]


def test_redirects_are_followed_by_httpx_so_hooks_see_each_hop(server: str) -> None:
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(request.url.path)

    async def main() -> tuple[int, int]:
        async with client(follow_redirects=True, event_hooks={"request": [hook]}) as http:
            response = await http.get(f"{server}/redirect")
            return response.status_code, len(response.content)

    assert asyncio.run(main()) == (200, BIG)
    assert seen == ["/redirect", "/big"]


def test_media_client_follows_redirects_checking_each_hop(server: str) -> None:
    """MediaClient follows a redirect itself, every target through `next_hop`; a hop it refuses
    ends the request with that refusal, and a chain longer than the limit is TooManyRedirects."""
    hops: list[tuple[str, str]] = []

    def checked(url: str, location: str) -> str:
        hops.append((url.rsplit("/", 1)[1], location))
        return next_hop(url, location)

    def refuse(url: str, location: str) -> str:
        raise RefusedURL("refusing this hop")

    async def main(check: Callable[[str, str], str], redirects: int = 5) -> tuple[int, int]:
        async with MediaClient(CurlTransport(jobs=1), headers={}, connect=5.0, read=5.0, redirects=redirects,
                               next_hop=check) as http:
            async with http.stream(f"{server}/redirect") as response:
                return response.status_code, sum([len(chunk) async for chunk in response.aiter_raw()])

    assert asyncio.run(main(checked)) == (200, BIG)
    assert hops == [("redirect", "/big")]
    with pytest.raises(RefusedURL):
        asyncio.run(main(refuse))
    with pytest.raises(httpx.TooManyRedirects):
        asyncio.run(main(checked, redirects=0))


def test_errors_are_httpx_exceptions(server: str) -> None:
    async def fetch(url: str, **kwargs: object) -> bytes:
        async with client(**kwargs) as http:  # type: ignore[arg-type]
            return (await http.get(url)).content

    with pytest.raises(httpx.RemoteProtocolError):
        asyncio.run(fetch(f"{server}/cut"))
    with pytest.raises(httpx.ReadTimeout):
        asyncio.run(fetch(f"{server}/silent", timeout=httpx.Timeout(1.0)))
    with socket.socket() as probe:  # a port that was just free: nothing listens there
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        asyncio.run(fetch(f"http://127.0.0.1:{closed}/"))
    with pytest.raises(httpx.UnsupportedProtocol):
        asyncio.run(client().post(f"{server}/big", content=b"x"))


def test_a_slow_reader_pauses_the_transfer_instead_of_buffering_it(server: str) -> None:
    """After the first chunk the reader waits; the server cannot have sent the whole file, and
    what the transport holds stays within its bound."""
    Handler.sent["big"] = 0

    async def main() -> tuple[int, int]:
        async with client() as http:
            async with http.stream("GET", f"{server}/big") as response:
                stream = response.aiter_raw()
                got = len(await stream.__anext__())
                await asyncio.sleep(1.0)
                held = response.stream._stream.transfer.buffered  # type: ignore[attr-defined] # httpx wraps ours
                sent = Handler.sent["big"]
                async for chunk in stream:
                    got += len(chunk)
                assert got == BIG
                return held, sent

    held, sent = asyncio.run(main())
    assert held <= MAX_BUFFERED + CHUNK
    # socket buffers on both sides hold a few MiB more; the file is 24 MiB
    assert sent < BIG - 4 * CHUNK, sent


def test_leaving_a_stream_early_stops_its_thread(server: str) -> None:
    async def main() -> float:
        async with client() as http:
            async with http.stream("GET", f"{server}/big") as response:
                async for _chunk in response.aiter_raw():
                    break
            started = time.monotonic()
        return time.monotonic() - started  # aclose waited for the worker threads

    assert asyncio.run(main()) < 5
    assert not [t for t in threading.enumerate() if t.name.startswith("archiver-media")]


def test_cancelling_a_download_task_stops_the_transfer(server: str) -> None:
    async def main() -> None:
        async with client() as http:
            async def download() -> None:
                async with http.stream("GET", f"{server}/big") as response:
                    async for _chunk in response.aiter_raw():
                        await asyncio.sleep(0.5)

            task = asyncio.create_task(download())
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    assert not [t for t in threading.enumerate() if t.name.startswith("archiver-media")]


async def _read_all(http: httpx.AsyncClient, url: str, **kwargs: object) -> list[bytes]:
    async with http.stream("GET", url, **kwargs) as response:  # type: ignore[arg-type]
        return [chunk async for chunk in response.aiter_raw()]


@pytest.mark.parametrize("how", ["extension", "constructor", "read timeout", "headers"])
def test_a_trickling_response_fails_as_stalled_within_its_window(server: str, how: str) -> None:
    """10 B/s never trips the read timeout; the throughput check ends it all the same, whether
    the window comes with the request, from the transport, or from the read timeout, and whether
    the body or the headers trickle."""
    extensions = {THROUGHPUT: (1024.0, 1.0)} if how == "extension" else {}
    window = 1.0 if how in ("constructor", "headers") else None
    read = 1.5 if how == "read timeout" else 5.0
    path = "/trickle-head" if how == "headers" else "/trickle"

    async def main() -> float:
        transport = CurlTransport(jobs=1, stall_window=window)
        async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(read)) as http:
            started = time.monotonic()
            with pytest.raises(Stalled, match="stalled"):
                await asyncio.wait_for(_read_all(http, f"{server}{path}", extensions=extensions), 20)
            return time.monotonic() - started

    assert asyncio.run(main()) < 10


def test_a_slow_transfer_above_the_minimum_completes(server: str) -> None:
    async def main() -> list[bytes]:
        transport = CurlTransport(jobs=1, min_speed=500, stall_window=0.5)
        async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5.0)) as http:
            return await asyncio.wait_for(_read_all(http, f"{server}/slow"), 30)

    chunks = asyncio.run(main())
    assert b"".join(chunks) == (MP3_HEAD + bytes(10_000))[:10_000]
    assert len(chunks) > 1  # handed over as time passed, not once at the end


def test_bytes_reach_the_consumer_long_before_a_chunk_fills(server: str) -> None:
    """The server sends 1000 bytes, then waits until the client has them: with hand-overs per
    CHUNK only, the client would see nothing until the server gave up waiting."""
    Handler.seen_first.clear()
    Handler.held_out.clear()

    async def main() -> tuple[int, int]:
        async with client(timeout=httpx.Timeout(HOLD + 10)) as http:
            async with http.stream("GET", f"{server}/first-then-wait") as response:
                stream = response.aiter_raw()
                first = await asyncio.wait_for(stream.__anext__(), HOLD + 5)
                Handler.seen_first.set()
                rest = sum([len(chunk) async for chunk in stream])
                return len(first), len(first) + rest

    first, total = asyncio.run(main())
    assert not Handler.held_out.is_set()
    assert 0 < first < CHUNK and total == 2000


def test_download_reports_a_trickling_media_server_as_stalled(server: str, tmp_path: Path) -> None:
    job = Transfer(url=f"{server}/trickle", part=tmp_path / "song.mp3.part", expect="audio",
                   max_size=10 * TRICKLE_SIZE, tuning=Tuning(attempts=1, stall_window=1.0))

    async def main() -> None:
        transport = CurlTransport(jobs=1, stall_window=1.0)
        async with MediaClient(transport, headers={}, connect=5.0, read=5.0, redirects=5, next_hop=next_hop) as http:
            await asyncio.wait_for(fetch_once(http, job, lambda _n: None), 20)

    with pytest.raises(TransientError, match="stalled"):
        asyncio.run(main())
    assert 0 < job.part.stat().st_size < TRICKLE_SIZE  # what arrived is kept for a resume


class FileSink:
    """Takes a 200's body into `path`, as download's sink does, and notes how the transfer ended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1
        self.ended: tuple[bool, OSError | None] | None = None

    def accept(self, status: int, headers: list[tuple[bytes, bytes]]) -> int | None:
        if status != 200:
            return None
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        return self.fd

    def received(self, nbytes: int) -> bool:
        return True

    def close(self, complete: bool, write_error: OSError | None) -> None:
        self.ended = (complete, write_error)
        if self.fd >= 0:
            os.close(self.fd)

    def advanced(self, nbytes: int) -> None:
        pass


def test_a_sinks_body_is_written_by_libcurl_without_python_per_piece(server: str, tmp_path: Path) -> None:
    """The transfer's thread runs Python for the head and a few progress calls, not for each of
    the 1,536 pieces (16 KiB) of a 24 MiB body: Python held elsewhere cannot hold the bytes back."""
    calls: collections.Counter[str] = collections.Counter()

    def profile(frame: Any, event: str, _arg: object) -> None:
        if event == "call" and threading.current_thread().name.startswith("archiver-media"):
            calls[frame.f_code.co_name] += 1

    sink = FileSink(tmp_path / "big.part")
    curl_file.load()  # once per process, not the transfer's

    async def main() -> tuple[int, int]:
        async with MediaClient(CurlTransport(jobs=1), headers={}, connect=5.0, read=5.0, redirects=0,
                               next_hop=next_hop) as http:
            async with http.stream(f"{server}/big", extensions={SINK: sink}) as response:
                streamed = sum([len(chunk) async for chunk in response.aiter_raw()])
                return response.status_code, streamed

    threading.setprofile(profile)
    try:
        assert asyncio.run(main()) == (200, 0)  # the body went to the file, none through the loop
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    assert sink.ended == (True, None)
    assert sink.path.read_bytes() == body(BIG)
    assert 0 < sum(calls.values()) < BIG // (16 * 1024), calls.most_common(8)


def test_a_sink_that_takes_no_body_ends_the_transfer_after_the_head(server: str, tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "none.part")

    async def main() -> tuple[int, bytes]:
        async with MediaClient(CurlTransport(jobs=1), headers={}, connect=5.0, read=5.0, redirects=0,
                               next_hop=next_hop) as http:
            async with http.stream(f"{server}/missing", extensions={SINK: sink}) as response:
                return response.status_code, b"".join([chunk async for chunk in response.aiter_raw()])

    assert asyncio.run(main()) == (404, b"")
    assert sink.ended == (False, None) and not sink.path.exists()


def _easy_get(url: str, fd: int, *, on_line: Callable[[bytes], bool] | None = None,
              on_progress: Callable[[int], bool] | None = None, kind: str = "ctypes") -> curl_file.Outcome:
    easy = curl_file.FileEasy() if kind == "ctypes" else curl_file.CallbackEasy()

    def line(data: bytes) -> bool:
        if data == b"\r\n":
            easy.write_into(fd)
        return on_line(data) if on_line else True

    try:
        return easy.perform(curl_file.Options(((pycurl.NOSIGNAL, 1),), ((pycurl.URL, url),), ()), line,
                            on_progress or (lambda _n: True))
    finally:
        easy.close()


def test_libcurl_through_ctypes_is_pycurls_own() -> None:
    assert curl_file.load() == f"libcurl/{pycurl.version_info()[1]}"


def test_without_a_mapped_libcurl_the_systems_is_searched(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes.util

    monkeypatch.setattr(curl_file, "_mapped_curls", lambda: [])
    if ctypes.util.find_library("curl") is None:
        with pytest.raises(curl_file.Unavailable):
            curl_file._load_curl()
    else:
        assert curl_file._load_curl().curl_version().startswith(b"libcurl/")


@pytest.fixture
def no_ctypes_curl(monkeypatch: pytest.MonkeyPatch) -> None:
    """A system where libcurl cannot be driven through ctypes: pycurl's write callback does the work."""
    def unavailable() -> None:
        raise curl_file.Unavailable("no libcurl could be loaded through ctypes")

    monkeypatch.setattr(curl_file, "_library", unavailable)


def test_without_libcurl_through_ctypes_pycurl_writes_the_sinks_body(server: str, tmp_path: Path,
                                                                     no_ctypes_curl: None) -> None:
    assert isinstance(curl_file.easy(), curl_file.CallbackEasy)
    sink = FileSink(tmp_path / "big.part")

    async def main() -> tuple[int, int]:
        async with MediaClient(CurlTransport(jobs=1), headers={}, connect=5.0, read=5.0, redirects=0,
                               next_hop=next_hop) as http:
            async with http.stream(f"{server}/big", extensions={SINK: sink}) as response:
                return response.status_code, sum([len(chunk) async for chunk in response.aiter_raw()])

    assert asyncio.run(main()) == (200, 0)
    assert sink.ended == (True, None) and sink.path.read_bytes() == body(BIG)


@pytest.mark.parametrize("kind", ["ctypes", "pycurl"])
def test_a_body_that_cannot_be_written_reports_why(server: str, kind: str) -> None:
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        outcome = _easy_get(f"{server}/big", full, kind=kind)
    finally:
        os.close(full)
    assert outcome.code == pycurl.E_WRITE_ERROR and outcome.write_errno == errno.ENOSPC
    assert outcome.received < BIG


@pytest.mark.parametrize("kind", ["ctypes", "pycurl"])
def test_callbacks_stop_a_transfer_and_their_errors_come_back(server: str, tmp_path: Path, kind: str) -> None:
    fd = os.open(tmp_path / "body", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        refused = _easy_get(f"{server}/big", fd, on_line=lambda line: not line.startswith(b"Content-Length"), kind=kind)
        assert refused.code == pycurl.E_WRITE_ERROR and refused.received == 0

        def broken(line: bytes) -> bool:
            raise ValueError("a bug in a callback")

        with pytest.raises(ValueError, match="a bug in a callback"):
            _easy_get(f"{server}/big", fd, on_line=broken, kind=kind)
        started = time.monotonic()
        stopped = _easy_get(f"{server}/trickle", fd, on_progress=lambda received: received == 0, kind=kind)
        assert stopped.code == pycurl.E_ABORTED_BY_CALLBACK and time.monotonic() - started < 5
    finally:
        os.close(fd)


def test_a_body_of_the_wrong_kind_is_stopped_once_its_first_bytes_land(server: str, tmp_path: Path) -> None:
    """An HTML page sent as a 200 for an MP3 ends as WrongContent long before its 96 MiB came."""
    from archiver.errors import WrongContent

    job = Transfer(url=f"{server}/html", part=tmp_path / "song.mp3.part", expect="audio", max_size=2 * HTML_PAGE)

    async def main() -> None:
        async with MediaClient(CurlTransport(jobs=1), headers={}, connect=5.0, read=5.0, redirects=0,
                               next_hop=next_hop) as http:
            await asyncio.wait_for(fetch_once(http, job, lambda _n: None), 30)

    with pytest.raises(WrongContent):
        asyncio.run(main())
    assert Handler.sent["html"] < HTML_PAGE // 3


def test_a_failed_write_is_always_given_a_reason(tmp_path: Path) -> None:
    """libcurl works on after a failed write, so the errno left may be another call's (or 0)."""
    library = curl_file._library()
    plain = os.open(tmp_path / "body", os.O_WRONLY | os.O_CREAT, 0o644)
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        assert curl_file._write_errno(library, 0, errno.EDQUOT, plain) == errno.EDQUOT
        stream = library.fdopen(os.dup(plain), b"wb")
        assert curl_file._write_errno(library, stream, errno.EAGAIN, plain) == errno.EIO  # not 0, not EAGAIN
        library.fclose(stream)
        stream = library.fdopen(os.dup(full), b"wb")
        fwrite = ctypes.CDLL(None).fwrite
        fwrite.argtypes, fwrite.restype = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p], ctypes.c_size_t
        assert fwrite(b"abc", 1, 3, stream) == 3  # held in the stream's buffer
        assert curl_file._write_errno(library, stream, 0, full) == errno.ENOSPC  # found by writing it again
        library.fclose(stream)
    finally:
        os.close(plain)
        os.close(full)


def test_libcurl_is_driven_through_ctypes_on_linux_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(curl_file, "_loaded", [])
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(curl_file.Unavailable, match="Linux only"):
        curl_file.load()
    assert isinstance(curl_file.easy(), curl_file.CallbackEasy)


@pytest.mark.parametrize("path", ["/whole-206", "/odd-total"])
def test_a_206_to_a_request_without_range_is_the_whole_file(server: str, tmp_path: Path, path: str) -> None:
    """Nothing was held, so nothing is resumed: the body is written afresh (it once went to a
    `.part` opened for appending that did not exist), and a total that is no number ("²")
    leaves the size to Content-Length instead of failing the file."""
    job = Transfer(url=f"{server}{path}", part=tmp_path / "song.mp3.part", expect="audio", max_size=BIG)

    async def main() -> int:
        async with MediaClient(CurlTransport(jobs=1), headers={}, connect=5.0, read=5.0, redirects=0,
                               next_hop=next_hop) as http:
            fetched = await asyncio.wait_for(fetch_once(http, job, lambda _n: None), 30)
            return fetched.size

    assert asyncio.run(main()) == WHOLE
    assert job.part.read_bytes() == (MP3_HEAD + bytes(WHOLE))[:WHOLE]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12))
def test_a_header_number_is_decimal_ascii_or_none(text: str) -> None:
    """Sizes and offsets come from the server's headers: any text gives a number or None, never an error."""
    from archiver.download import _number

    value = _number(text)
    assert value is None or (text.isascii() and text.isdecimal() and value == int(text))
    if text.isascii() and text.isdecimal():
        assert value == int(text)
