"""The HTTP server `archiver serve` runs the app on: uvicorn, with the limits a server facing a
network needs and uvicorn does not set by itself.

uvicorn gives a connection all the time it wants to send its request head, so a client sending a
header line now and then holds a descriptor for good, and a thousand such clients (no token needed:
it is checked once the head is complete) stop the server. Here a request head must be complete
within HEAD_SECONDS of the connection, or of the previous response; connections beyond
MAX_CONNECTIONS get a 503; and each query a page runs stops after QUERY_SECONDS (readdb's time
limit), so a request its client gave up on does not hold a worker.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_SECONDS = 10.0
MAX_CONNECTIONS = 256
QUERY_SECONDS = 10.0


class HeadDeadline(H11Protocol):
    """h11 with a deadline on each request head (see the module note)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._answering():  # a whole head arrived: the request is being answered
            self._stop_timer()

    def _answering(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        self._stop_timer()
        self._head_timer = self.loop.call_later(HEAD_SECONDS, self._too_slow)

    def _stop_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _too_slow(self) -> None:
        self._head_timer = None
        if not self._answering() and not self.transport.is_closing():  # still waiting for a head
            self.transport.close()


def run(app: Any, sock: socket.socket) -> None:
    """Serve `app` on the listening socket until interrupted."""
    config = uvicorn.Config(app, http=HeadDeadline, log_level="warning", access_log=False, lifespan="off",
                            server_header=False, proxy_headers=False, limit_concurrency=MAX_CONNECTIONS)
    uvicorn.Server(config).run(sockets=[sock])
