"""The one TLS context every provider client of a run shares, built in the background.

Loading the CA bundle takes ~50 ms, and httpx builds a context for each client it makes. OpenSSL
loads the bundle without holding the GIL, so a sync starts building it (`warm`) before importing
its libraries, and every provider client then takes the same context (`context`). The trust is
httpx's default: `SSL_CERT_FILE`, else `SSL_CERT_DIR`, else certifi's bundle.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

_lock = threading.Lock()
_built: Future[ssl.SSLContext] | None = None


def _build(future: Future[ssl.SSLContext]) -> None:
    try:
        import ssl

        if os.environ.get("SSL_CERT_FILE"):
            made = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
        elif os.environ.get("SSL_CERT_DIR"):
            made = ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
        else:
            import certifi

            made = ssl.create_default_context(cafile=certifi.where())
    except BaseException as exc:  # a broken bundle fails the first client that needs it, not this thread
        future.set_exception(exc)
    else:
        future.set_result(made)


def warm() -> None:
    """Start building the context in a thread; the first `context()` call waits for it."""
    global _built
    with _lock:
        if _built is not None:
            return
        _built = Future()
        try:
            threading.Thread(target=_build, args=(_built,), name="tls-context", daemon=True).start()
        except RuntimeError:  # no thread to be had (a process limit): built here instead
            _build(_built)


def context() -> ssl.SSLContext:
    """The shared context, built here if nothing started it."""
    global _built
    with _lock:
        if _built is None:
            _built = Future()
            _build(_built)
        built = _built
    return built.result()
