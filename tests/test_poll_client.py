"""What one poll request costs in the API client beyond the HTTP exchange itself."""

from __future__ import annotations

import asyncio
import importlib.machinery
from typing import Any

import pytest

from archiver.config import load_config
from archiver.providers import get_source
from archiver.providers.http import ApiClient, Counters, RetryBudget, RetryPolicy


def test_a_poll_request_searches_no_import_path(sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """httpcore asks which event loop runs on every request; with its helper missing, each ask
    was a failed import that searched every path entry again (four a request)."""
    ids = [sim.add_task("acedata", steps=10**6) for _ in range(3)]
    env = {"ARCHIVER_ACEDATA_TOKEN": sim.tokens["acedata"], "ARCHIVER_ACEDATA_BASE_URL": sim.provider_url("acedata")}
    settings = load_config(env=env, overrides={"library": "/nonexistent"}).provider("acedata")
    searched: list[str] = []
    real = importlib.machinery.PathFinder.find_spec

    def counting(name: str, *args: Any, **kwargs: Any) -> Any:
        searched.append(name)
        return real(name, *args, **kwargs)

    async def poll() -> int:
        async with ApiClient(settings, connect_timeout=2, read_timeout=2, budget=RetryBudget(0),
                             counters=Counters(), policy=RetryPolicy(attempts=1)) as client:
            await client.fetch(get_source("acedata"), ids)  # the first request may load what it needs
            monkeypatch.setattr(importlib.machinery.PathFinder, "find_spec", counting)
            found = 0
            for _ in range(5):
                records, _missing = await client.fetch(get_source("acedata"), ids)
                found += len(records)
            return found

    assert asyncio.run(poll()) == 15
    assert searched == []


@pytest.mark.parametrize("status", [503, 429, 401])
def test_a_retry_after_a_short_error_answer_reuses_its_connection(status: int) -> None:
    """The status decides a fault, a throttle or a refusal; a short body is still read so that
    the retries go over the same connection instead of a new one (a TLS handshake each)."""
    import json
    import socketserver
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    connections, requests = [0], [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            connections[0] += 1
            super().setup()

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            requests[0] += 1
            self.rfile.read(int(self.headers.get("Content-Length") or 0))  # a POST's JSON
            body = json.dumps({"code": status, "message": "busy, try later"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

    class Server(socketserver.ThreadingMixIn, HTTPServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"ARCHIVER_ACEDATA_TOKEN": "t0ken", "ARCHIVER_ACEDATA_BASE_URL": f"http://127.0.0.1:{server.server_port}/api/"}
    settings = load_config(env=env, overrides={"library": "/nonexistent"}).provider("acedata")

    async def poll() -> list[str]:
        errors = []
        async with ApiClient(settings, connect_timeout=2, read_timeout=2, budget=RetryBudget(100), counters=Counters(),
                             policy=RetryPolicy(attempts=4, initial=0.001, maximum=0.001)) as client:
            for _ in range(3):
                try:
                    await client.fetch(get_source("acedata"), ["a"])
                except Exception as exc:  # noqa: BLE001 - the error is what this test reads
                    errors.append(str(exc))
        return errors

    try:
        errors = asyncio.run(poll())
    finally:
        server.shutdown()
        server.server_close()
    said = "rejected the token" if status == 401 else f"HTTP {status}"
    assert len(errors) == 3 and all(said in e for e in errors), errors
    assert requests[0] >= 3 and connections[0] == 1, (requests, connections)
