"""The last steps of a fetched audio file before it is placed, in one worker-thread call: read
its cover, tag it, hash it and fsync it. One hand-off to a thread per song instead of four keeps
the event loop free for the transfers (each hand-off is an executor submit and two loop wake-ups,
paid under the GIL the transfers' threads also want).

An MP3 skips most of that: its tags are built while it downloads (`Prelude`) and its hash taken as
it streams, so finishing only puts the tags in front of the audio (`finish_prelude`: in blocks the
file system inserts, or by copying the audio behind them where it cannot), instead of rewriting
the file to make room for the tags and reading it again to hash it.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from .errors import ArchiverError, TaggingError
from .fs import STORAGE_ERRNOS, graft, open_read, read_bytes, sha256_file, storage_error, sync_file, write_joined
from .tagging import TagData, TagOutcome, id3_prelude, tag_file

if TYPE_CHECKING:
    from .download import Fetched


@dataclass(frozen=True)
class Finished:
    outcome: TagOutcome
    had_cover: bool  # the tags carry the clip's cover
    size: int
    sha256: str


def finish_audio(part: Path, data: TagData, cover: Path | None, id3_version: int) -> Finished:
    """Tag `part` with `data` and the cover at `cover` (when it can be read), then hash and fsync it.

    A cover that cannot be read (gone, a link) only leaves the tags without it; a full disk while
    tagging is a StorageError (the file removed: every download stops), any other TaggingError or
    storage error propagates for the caller to judge.
    """
    image = _read_cover(cover)
    try:
        outcome = tag_file(part, replace(data, cover=image) if image is not None else data, id3_version=id3_version)
    except TaggingError as exc:
        full = storage_cause(exc)
        if full is None:
            raise
        part.unlink(missing_ok=True)  # a full disk while tagging stops every download
        raise storage_error(full, part) from None
    size, digest = sha256_file(part)
    sync_file(part)  # after tagging: its bytes reach the disk once
    return Finished(outcome, image is not None, size, digest)


class Prelude:
    """The tags an MP3 starts with, built in its transfer's thread from the source's own tag once
    the body is in (download.Transfer.prelude): the audio is then never rewritten to tag it."""

    def __init__(self, data: TagData, cover: Path | None, id3_version: int) -> None:
        self.data = data
        self.cover = cover
        self.id3_version = id3_version
        self.outcome: TagOutcome | None = None
        self.had_cover = False

    def __call__(self, lead: bytes, extent: int, block: int) -> bytes | None:
        image = _read_cover(self.cover)
        data = replace(self.data, cover=image) if image is not None else self.data
        built = id3_prelude(lead, extent, data, id3_version=self.id3_version, block=block)
        if built is None:
            return None
        tags, self.outcome = built
        self.had_cover = image is not None
        return tags


def finish_prelude(part: Path, tagging: Path, fetched: Fetched, prelude: Prelude) -> Finished | None:
    """`tagging` = the prelude, then the `.part` after the source's tag, fsynced; the `.part` goes.

    The `.part` is renamed to `tagging` first (once tags go in, it is no longer a prefix of the
    source a resume could extend) and the tag grafted in front of its audio (`fs.graft`); where
    the file system cannot do that, it goes back to its name and the audio is copied behind the
    tag into `tagging`. None when the source ends in an ID3v1 tag, which `tag_file` updates too:
    such a file is tagged the usual way.
    """
    if prelude.outcome is None or not fetched.prelude:
        return None
    with open_read(part) as fh:
        fh.seek(max(0, fetched.size - 128))
        if fh.read(3) == b"TAG":
            return None
    with _removed_on_failure(tagging):
        os.replace(part, tagging)
        size = graft(tagging, fetched.prelude, fetched.skip)
    if size is None:  # untouched: back where a resume finds it, then copied behind the tag
        os.replace(tagging, part)
        with _removed_on_failure(tagging):
            size = write_joined(tagging, fetched.prelude, part, fetched.skip)
        part.unlink()
    if size != len(fetched.prelude) + fetched.size - fetched.skip:  # the hash was taken of that many bytes
        tagging.unlink(missing_ok=True)
        raise TaggingError(f"{tagging.name}: {size} bytes after tagging, expected "
                           f"{len(fetched.prelude) + fetched.size - fetched.skip}")
    return Finished(prelude.outcome, prelude.had_cover, size, fetched.sha256)


@contextlib.contextmanager
def _removed_on_failure(tagging: Path) -> Iterator[None]:
    """A file half tagged is never kept; a full disk while tagging stops every download."""
    try:
        yield
    except BaseException as exc:
        tagging.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
            raise storage_error(exc, tagging) from None
        raise


def _read_cover(cover: Path | None) -> bytes | None:
    """The cover's bytes; one that cannot be read (gone, a link) leaves the tags without it."""
    if cover is None:
        return None
    try:
        return read_bytes(cover)
    except (OSError, ArchiverError):
        return None


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
