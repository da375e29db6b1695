"""Media over HTTPS through a proxy (`https_proxy`), as behind a company's firewall.

libcurl reaches an HTTPS host through an HTTP proxy with a CONNECT tunnel, whose own answer
("200 Connection established") must not be taken for the media host's: that head has no
length, and a sink that took it would start a resumed `.part` over before the real 206 came.
A real TLS server (a certificate made here with the openssl tool) and a real CONNECT proxy, both
on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
import select
import socket
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

import archiver.transport as transport
from archiver.download import Transfer, Tuning, fetch_once, next_hop
from archiver.transport import CurlTransport, MediaClient
from conftest import answer_range

SONG = b"\xff\xfb\x90\x64" + hashlib.shake_256(b"proxied").digest(600_000)  # sniffs as mp3


class Media(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    ranges: list[str] = []  # the Range header of each request ("" for none)

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.ranges.append(self.headers.get("Range", ""))
        start, end = answer_range(self, len(SONG))
        self.wfile.write(SONG[start:end])


class Tunnel(socketserver.BaseRequestHandler):
    """A CONNECT proxy: reads the request head, answers 200, then moves bytes both ways."""

    connects: list[str] = []

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            piece = self.request.recv(4096)
            if not piece:
                return
            head += piece
        target = head.split(b" ")[1].decode()
        self.connects.append(target)
        host, _, port = target.rpartition(":")
        with socket.create_connection((host, int(port))) as upstream:
            self.request.sendall(b"HTTP/1.1 200 Connection established\r\nProxy-Agent: test\r\n\r\n")
            pair = {self.request: upstream, upstream: self.request}
            while True:
                ready, _, _ = select.select(list(pair), [], [], 10)
                if not ready:
                    return
                for side in ready:
                    data = side.recv(65536)
                    if not data:
                        return
                    pair[side].sendall(data)


@pytest.fixture
def proxied(loopback_certificate: tuple[Path, ssl.SSLContext], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The media host's https URL, reachable only through the proxy named by `https_proxy`."""
    cert, context = loopback_certificate
    media = ThreadingHTTPServer(("127.0.0.1", 0), Media)
    media.socket = context.wrap_socket(media.socket, server_side=True)
    proxy = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Tunnel)
    proxy.daemon_threads = True
    Media.ranges, Tunnel.connects = [], []
    for server in (media, proxy):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(transport, "_ca_file", lambda: str(cert))  # trust the test certificate
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{proxy.server_address[1]}")
    try:
        yield f"https://127.0.0.1:{media.server_address[1]}/song.mp3"
    finally:
        for server in (media, proxy):
            server.shutdown()
            server.server_close()


def _fetch(url: str, part: Path) -> tuple[int, str, list[tuple[int | None, int]]]:
    totals: list[tuple[int | None, int]] = []
    job = Transfer(url=url, part=part, expect="audio", max_size=10 * len(SONG), tuning=Tuning(attempts=1),
                   on_total=lambda total, done: totals.append((total, done)))

    async def main() -> tuple[int, str]:
        http = MediaClient(CurlTransport(jobs=1), headers={}, connect=5.0, read=10.0, redirects=5, next_hop=next_hop)
        async with http:
            fetched = await asyncio.wait_for(fetch_once(http, job, lambda _n: None), 30)
        return fetched.size, fetched.sha256

    size, digest = asyncio.run(main())
    return size, digest, totals


def test_a_download_through_an_https_proxy_reads_the_hosts_answer(proxied: str, tmp_path: Path) -> None:
    size, digest, totals = _fetch(proxied, tmp_path / "song.mp3.part")
    assert Tunnel.connects and Media.ranges == [""]
    assert totals == [(len(SONG), 0)]  # the host's Content-Length, not the tunnel's empty head
    assert size == len(SONG) and digest == hashlib.sha256(SONG).hexdigest()
    assert (tmp_path / "song.mp3.part").read_bytes() == SONG


def test_a_download_resumed_through_an_https_proxy_keeps_what_it_had(proxied: str, tmp_path: Path) -> None:
    part = tmp_path / "song.mp3.part"
    part.write_bytes(SONG[:250_000])
    size, digest, totals = _fetch(proxied, part)
    probe, resume = Media.ranges  # the kept bytes' tail compared with the host's, then the rest
    assert probe.startswith("bytes=") and probe.endswith("-249999") and resume == "bytes=250000-"
    assert totals == [(len(SONG), 250_000)]
    assert part.read_bytes() == SONG and size == len(SONG) and digest == hashlib.sha256(SONG).hexdigest()
