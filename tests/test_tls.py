"""The TLS context provider clients share: built once per run, off the main thread, with httpx's trust."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from archiver import tls
from archiver.config import load_config
from archiver.errors import TransientError
from archiver.providers import get_source
from archiver.providers.http import ApiClient, Counters, RetryBudget, RetryPolicy


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """No context built yet; each build's thread name is recorded."""
    monkeypatch.setattr(tls, "_built", None)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    built: list[str] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    yield built


def _client(provider: str, base: str = "https://127.0.0.1:9/") -> ApiClient:
    env = {f"ARCHIVER_{provider.upper()}_TOKEN": "sk-test", f"ARCHIVER_{provider.upper()}_BASE_URL": base}
    settings = load_config(env=env, overrides={"library": "/nonexistent"}).provider(provider)
    return ApiClient(settings, connect_timeout=2, read_timeout=2, budget=RetryBudget(0), counters=Counters(),
                     policy=RetryPolicy(attempts=1))


def test_the_provider_clients_of_a_run_load_the_ca_bundle_once(fresh: list[str]) -> None:
    clients = [_client("acedata"), _client("ccapi"), _client("mountsea")]
    assert len(fresh) == 1
    for client in clients:
        asyncio.run(client.aclose())


def test_warm_builds_the_context_in_its_own_thread_and_clients_take_it(fresh: list[str]) -> None:
    tls.warm()
    tls.warm()
    context = tls.context()
    assert fresh == ["tls-context"]
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert tls.context() is context


def test_a_missing_ca_file_fails_the_client_that_needs_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "absent.pem"))
    tls.warm()
    with pytest.raises(OSError):
        _client("acedata")


class _Answer(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's spelling
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"items": [], "count": 0}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def https_api(loopback_certificate: tuple[Path, ssl.SSLContext]) -> Iterator[tuple[str, Path]]:
    """An https API on loopback with a certificate of its own; its URL and the certificate."""
    cert, context = loopback_certificate
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/", cert
    finally:
        server.shutdown()
        server.server_close()


def _poll(base: str) -> Any:
    async def run() -> Any:
        async with _client("acedata", base) as client:
            return await client.fetch(get_source("acedata"), ["t-1"])
    return asyncio.run(run())


@pytest.mark.parametrize("trusted", [True, False])
def test_a_poll_over_https_verifies_against_the_shared_context(https_api: tuple[str, Path], trusted: bool,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    base, cert = https_api
    if trusted:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        records, missing = _poll(base)
        assert records == [] and list(missing) == ["t-1"]  # the answer came through the handshake
    else:  # certifi's roots do not know the test certificate
        with pytest.raises(TransientError, match="connection failed"):
            _poll(base)


def test_a_process_without_a_thread_to_spare_builds_the_context_itself(fresh: list[str],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refused)
    tls.warm()  # never fails a sync: the context is an optimisation
    assert tls.context().verify_mode is ssl.CERT_REQUIRED
    assert fresh == [threading.current_thread().name]
