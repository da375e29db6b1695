"""The last steps of a fetched audio file before it is placed, in one worker-thread call: read
its cover, tag it, hash it and fsync it. One hand-off to a thread per song instead of four keeps
the event loop free for the transfers (each hand-off is an executor submit and two loop wake-ups,
paid under the GIL the transfers' threads also want).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from .errors import ArchiverError
from .fs import STORAGE_ERRNOS, read_bytes, sha256_file, sync_file
from .tagging import TagData, TagOutcome, tag_file


@dataclass(frozen=True)
class Finished:
    outcome: TagOutcome
    had_cover: bool  # the tags carry the clip's cover
    size: int
    sha256: str


def finish_audio(part: Path, data: TagData, cover: Path | None, id3_version: int) -> Finished:
    """Tag `part` with `data` and the cover at `cover` (when it can be read), then hash and fsync it.

    A cover that cannot be read (gone, a link) only leaves the tags without it; a TaggingError
    or a storage error propagates for the caller to judge.
    """
    image: bytes | None = None
    if cover is not None:
        try:
            image = read_bytes(cover)
        except (OSError, ArchiverError):
            image = None
    outcome = tag_file(part, replace(data, cover=image) if image is not None else data, id3_version=id3_version)
    size, digest = sha256_file(part)
    sync_file(part)  # after tagging: its bytes reach the disk once
    return Finished(outcome, image is not None, size, digest)


def storage_cause(exc: BaseException) -> OSError | None:
    """The full-disk (or read-only, I/O) OSError behind a wrapped error, if there is one."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in STORAGE_ERRNOS:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def truncated(real: float | None, expected: float | None) -> bool:
    """Shorter than the payload says by more than max(2 s, 5 %)? A length of 0 (what
    `audio_length` gives a file whose structure is cut short) is always short."""
    if real is None or not expected:
        return False
    return real <= 0 or expected - real > max(2.0, 0.05 * expected)
