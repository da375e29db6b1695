"""Every error archiver raises on purpose, in one tree.

The CLI maps each branch to a message and an exit code; third-party exceptions (httpx, sqlite,
mutagen, OS errors) are wrapped into one of these at the boundary where they happen, so callers
never need to know which library failed.

    ArchiverError
    ├── UsageError                  exit 2: a bad argument on the command line
    │   └── UnknownSourceError
    ├── ConfigError                 exit 2: bad config file, key or value
    ├── PayloadError                a response that is not the source's documented shape
    │   └── TaskIdRequired          a body without a task id (aimusicapi) and none given
    ├── ProviderError               an API answered, but not with a usable task
    │   ├── AuthError               401/403: the token was rejected
    │   ├── TaskNotFound            the API does not know this task id
    │   └── TransientError          worth retrying: timeouts, resets, 5xx, 429
    │       └── WrongContent        a body that is not the expected media (an HTML page)
    ├── DownloadError               a media file could not be fetched or verified
    │   ├── LinkExpired             403/404/410 from a media host: re-poll for a fresh URL
    │   ├── RefusedURL              not http(s), or bigger than max_file_size
    │   ├── StorageError            ENOSPC or another write error: stop all downloads
    │   └── PartGone                its temporary file was removed before it was placed
    ├── UnsafePath                  a link, or a file the library does not own, where it would write
    ├── LibraryAbsent               the database records files but the library root has none of them
    ├── TaggingError                mutagen could not read or write a file's tags
    ├── DatabaseError               the library database is missing, corrupt or locked
    │   └── TooSlow                 a read stopped at its time limit (a web request)
    ├── ClaimLost                   a fleet worker stalled past its lease: another took the file over
    └── LockHeld                    exit 75: another sync holds the library lock
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75


class ArchiverError(Exception):
    """Base of the tree; `exit_code` is what the CLI exits with."""

    exit_code = EXIT_FAILURES


class UsageError(ArchiverError):
    exit_code = EXIT_USAGE


class UnknownSourceError(UsageError):
    def __init__(self, name: str, valid: list[str]) -> None:
        super().__init__(f"unknown source {name!r}; valid sources: {', '.join(valid)}")
        self.name = name


class ConfigError(ArchiverError):
    exit_code = EXIT_USAGE


class PayloadError(ArchiverError):
    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source


class TaskIdRequired(PayloadError):
    pass


class ProviderError(ArchiverError):
    def __init__(self, provider: str, message: str, *, status_code: int | None = None) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.status_code = status_code


class AuthError(ProviderError):
    def __init__(self, provider: str, status_code: int | None = None) -> None:
        super().__init__(provider, "rejected the token", status_code=status_code)
        # The one-line message the issue asks for: "acedata rejected the token".
        self.args = (f"{provider} rejected the token",)


class TaskNotFound(ProviderError):
    def __init__(self, provider: str, task_id: str, message: str) -> None:
        super().__init__(provider, f"task {task_id}: {message}")
        self.task_id = task_id
        self.detail = message


class TransientError(ProviderError):
    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(provider, message, status_code=status_code)
        self.retry_after = retry_after


class WrongContent(TransientError):
    """Retry, but from scratch: the bytes received so far are not worth resuming."""


class DownloadError(ArchiverError):
    pass


class LinkExpired(DownloadError):
    pass


class RefusedURL(DownloadError):
    pass


class StorageError(DownloadError):
    pass


class PartGone(DownloadError):
    """Cleared by another fleet worker while this one stalled past its lease: the file is retried."""


class UnsafePath(ArchiverError):
    """Never written through, never replaced: the file fails alone, the run goes on."""


class LibraryAbsent(ArchiverError):
    """An unmounted disk looks like a library whose files all vanished: refuse, don't re-fetch."""


class TaggingError(ArchiverError):
    pass


class DatabaseError(ArchiverError):
    pass


class TooSlow(DatabaseError):
    pass


class ClaimLost(ArchiverError):
    """Not a failure of the file: the worker that took it over archives it; this one drops its copy."""


class LockHeld(ArchiverError):
    exit_code = EXIT_LOCKED
