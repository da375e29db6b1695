"""One writer per library: an OS file lock beside the files, released by the kernel if the
process dies, so a crashed sync never blocks the next one."""

from __future__ import annotations

from pathlib import Path

from .errors import LockHeld
from .fs import LOCK_NAME


class LibraryLock:
    """One sync per library: a second one fails at once (exit 75) or waits up to `wait` s."""

    def __init__(self, library: Path, wait: float | None) -> None:
        from filelock import FileLock

        library.mkdir(parents=True, exist_ok=True)
        self.path = library / LOCK_NAME
        self._lock = FileLock(str(self.path), timeout=wait if wait else 0, thread_local=False)

    def __enter__(self) -> "LibraryLock":
        from filelock import Timeout

        try:
            self._lock.acquire()
        except Timeout:
            raise LockHeld(f"another archiver sync is running on this library (lock {self.path})") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
