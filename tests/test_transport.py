"""The libcurl transport under httpx, against a real HTTP server on 127.0.0.1.

End-to-end behaviour (resume, expiry, redirects, stalls through the simulator) is covered by
test_download.py; these tests pin the transport's own promises: httpx's exception types,
bounded buffering when the consumer is slow, and no thread left running after a cancel.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import httpx
import pytest

from archiver.transport import CHUNK, MAX_BUFFERED, CurlTransport

BIG = 24 * 1024 * 1024


def body(size: int) -> bytes:
    return hashlib.shake_256(b"archiver").digest(size)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sent: dict[str, int] = {}

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path == "/big":
            data = body(BIG)
            start = 0
            if self.headers.get("Range"):
                start = int(self.headers["Range"].split("=")[1].rstrip("-"))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{BIG - 1}/{BIG}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(BIG - start))
            self.end_headers()
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


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
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
