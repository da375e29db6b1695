"""Files already at a clip's final path: whose they are, and which may be recorded unfetched.

A run killed between placing a file and recording it, or a library that was absent for a while,
leaves complete files in place. They are adopted (recorded, not fetched again) only when they
provably are the clip's: the content recorded before, or audio whose provenance tags name the
clip, or a cover beside such audio. Anything else at a stem is someone else's file.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import ArchiverError, UnsafePath
from .fs import open_read, sha256_file
from .media import AUDIO, expected_kinds, final_ext, sniff
from .models import Asset, Clip
from .tagging import read_tags

AUDIO_EXTS = expected_kinds("audio")  # what a song's file may be


@dataclass(frozen=True)
class InPlace:
    """A complete file of the clip found at its final path."""

    rel: PurePosixPath
    size: int
    sha256: str


def names_clip(path: Path, clip: Clip) -> bool:
    """Whether an audio file's provenance tags say it is this clip (links are never read)."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        tags = read_tags(path)
    except (OSError, ArchiverError):
        return False
    return tags.get("clip_id") == clip.clip_id and tags.get("source") in (None, clip.source)


def proves(clip: Clip, paths: list[Path]) -> bool:
    """Files at a stem may be adopted only when its audio names this clip in its provenance
    tags (a run that died before recording them); anything else there is someone else's."""
    return any(names_clip(path, clip) for path in paths if path.suffix[1:].lower() in AUDIO_EXTS)


def find_in_place(base: Path, clip: Clip, asset: Asset, target: Path) -> InPlace | None:
    """The clip's complete file at `target` (or under the name its sniffed kind gives, or the
    name recorded before), when it may be adopted; `base` is the library's real root."""
    stem = target.name.rpartition(".")[0]
    names = {f"{stem}.{final_ext(kind, asset.kind)}" for kind in expected_kinds(asset.kind)}
    if asset.path:
        names.add(PurePosixPath(asset.path).name)
    for path in (target.with_name(name) for name in sorted(names)):
        if asset.kind != "audio" and path.suffix[1:].lower() in AUDIO:
            continue  # the song's name (a video's recorded before it was kept apart): never another file's
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue  # a link or a folder is never adopted
            with open_read(path) as fh:
                head = fh.read(64)
        except (OSError, UnsafePath):
            continue
        kind = sniff(head)
        if kind is None or final_ext(kind, asset.kind) != path.suffix.lstrip(".") \
                or kind not in expected_kinds(asset.kind):
            continue
        size, digest = sha256_file(path)
        if digest != asset.sha256:
            if asset.sha256:
                continue  # recorded once and changed since: fetched anew (a repair), never adopted
            if asset.kind == "audio":
                if not names_clip(path, clip):
                    continue
            elif not proves(clip, [target.with_name(f"{stem}.{ext}") for ext in sorted(AUDIO_EXTS)]):
                continue
        return InPlace(PurePosixPath(path.relative_to(base).as_posix()), size, digest)
    return None
