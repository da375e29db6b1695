"""Ctrl-C and SIGTERM end a command the same way: cleanly, recorded, with the shell's exit code.

SIGTERM (a service manager stopping cron's job, `kill`) is turned into the same path as Ctrl-C:
a KeyboardInterrupt raised where the program is (or asyncio's cancellation when an event loop
runs), so `finally` blocks record the run. Only the exit code tells them apart: 130 or 143.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

EXIT_SIGINT = 130
EXIT_SIGTERM = 143

_received: list[int] = []  # the signals that interrupted this process, in order


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)  # asyncio.run's handler cancels the main task; the default raises
    else:
        raise KeyboardInterrupt


def exit_code() -> int:
    """What an interrupted command exits with: 143 after SIGTERM, 130 after Ctrl-C."""
    return EXIT_SIGTERM if signal.SIGTERM in _received else EXIT_SIGINT


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within this block, SIGTERM interrupts like Ctrl-C (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
