"""Which leftover `.part` files in the library are archiver's to remove.

A run that dies leaves temporary files; the next run removes those it does not resume. Only
names a file of this library accounts for are archiver's: a temporary name is the final name
plus `.part` (a worker's tag before it, a digest in place of a long name's head), and a song,
its cover, lyrics and video share one stem. Any other `.part` (a browser's download saved in
the folder, say) belongs to someone else and is left where it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .claims import tag_of
from .folder_art import is_cover_name
from .fs import PART, SKIP_NAMES, TAGGING, shortened, stem_key


def split_leftovers(root: Path, parts: Iterable[Path], stems: set[str]) -> tuple[list[Path], list[Path]]:
    """(archiver's, someone else's) among `parts` under `root`; `stems` are the `fs.stem_key`s
    of every path recorded or being written in the library."""
    ours: list[Path] = []
    theirs: list[Path] = []
    for part in parts:
        name = part.name
        final = name[: -len(PART)].removesuffix(tag_of(name) or "")
        rel = part.relative_to(root).with_name(final).as_posix()
        mine = (name.endswith(TAGGING) or name in SKIP_NAMES or shortened(final)
                or is_cover_name(final) or stem_key(rel) in stems)
        (ours if mine else theirs).append(part)
    return ours, theirs
