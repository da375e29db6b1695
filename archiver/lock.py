"""One writer per library: an OS file lock beside the files, released by the kernel if the
process dies, so a crashed sync never blocks the next one.

On POSIX it is `flock` on the lock file, taken directly: importing filelock (which takes the same
`flock`, so both interlock) cost an idle cron run a tenth of its time. Elsewhere filelock does it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .errors import LockHeld, UsageError
from .fs import LOCK_NAME

_POLL = 0.05  # seconds between attempts while waiting for another sync


class LibraryLock:
    """One sync per library: a second one fails at once (exit 75) or waits up to `wait` s."""

    def __init__(self, library: Path, wait: float | None) -> None:
        try:
            library.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # mkdir's own word for a file where the folder should be
            raise UsageError(f"the library {library} is not a folder (check --library)") from None
        self.path = library / LOCK_NAME
        self.wait = wait if wait else 0
        self._fd: int | None = None
        self._other: Any = None
        if os.name != "posix":
            from filelock import FileLock

            self._other = FileLock(str(self.path), timeout=self.wait, thread_local=False)

    def _held(self) -> LockHeld:
        return LockHeld(f"another archiver sync is running on this library (lock {self.path})")

    def __enter__(self) -> "LibraryLock":
        if self._other is not None:
            from filelock import Timeout

            try:
                self._other.acquire()
            except Timeout:
                raise self._held() from None
            return self
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise self._held() from None
                time.sleep(_POLL)
            except BaseException:
                os.close(fd)
                raise
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._other is not None:
            self._other.release()
            return
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor releases the flock
