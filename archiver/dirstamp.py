"""What the library's folders looked like when an idle sync last checked every file, so the next
idle run can tell "nothing changed" from a few `stat` calls instead of listing 40,000 files.

Creating, removing or renaming anything in a folder changes that folder's modification and change
times (the kernel sets them; the change time cannot be set back by a user), so a folder whose
inode and both times are the same still holds the same names. The root is the exception: the
database's WAL files come and go there on every run, so its entries are compared by name, kind and
inode instead. Every figure is taken as the walk lists that folder, so a change made after it was
listed shows next time. A folder touched within `RACY_SECONDS` of the walk is not trusted (a file
created in the same clock tick would leave its times unchanged), and the stamp also carries the
database's token for the paths it records, which changes with any of them, so a change on either
side sends the run back to the full walk. The stamp is a cache: unreadable, stale or planted, it
is simply not used.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import NamedTuple

from .errors import ArchiverError
from .fs import PART, SKIP_NAMES, STAMP_NAME, atomic_write, database_file, read_bytes

VERSION = 2
RACY_SECONDS = 2.0
MAX_BYTES = 8 * 1024 * 1024  # a stamp of 100,000 folders is a few MB; anything larger is not ours


class Stamp(NamedTuple):  # a tuple: building the class costs an idle run a fifth of a dataclass
    paths: str  # the database's token for its recorded paths (idle.py), as it was at the walk
    root: tuple[tuple[str, str, int], ...]  # the root's entries: (name, kind, inode)
    dirs: tuple[tuple[str, int, int, int], ...]  # every folder below: (relative path, inode, mtime, ctime)


def _kind(entry: os.DirEntry[str]) -> str:
    if entry.is_symlink():
        return "link"
    return "dir" if entry.is_dir(follow_symlinks=False) else "file"


def _root_listing(entries: list[os.DirEntry[str]]) -> tuple[tuple[str, str, int], ...]:
    """The root's entries that matter: all but the database, its WAL files, the lock and the
    stamp, which come and go on every run (a link is listed whatever its name, as the walk does)."""
    return tuple(sorted((e.name, _kind(e), e.inode()) for e in entries
                        if e.is_symlink() or (e.name not in SKIP_NAMES and not database_file(e.name))))


def _root_entries(root: Path) -> tuple[tuple[str, str, int], ...]:
    with os.scandir(root) as scan:
        return _root_listing(list(scan))


class Recorder:
    """What the walk saw, folder by folder, at the moment it listed each one (fs.walk_library's
    `observe`): a stamp is made from these, never from a later look, so whatever changes after a
    folder was listed shows as a difference next time."""

    def __init__(self) -> None:
        self.root: tuple[tuple[str, str, int], ...] | None = None
        self.dirs: list[tuple[str, int, int, int]] = []
        self.trusted = True  # False once a folder was touched too recently (or was not a folder)
        self.settled = time.time_ns() - int(RACY_SECONDS * 1e9)

    def __call__(self, rel: str, before: os.stat_result, entries: list[os.DirEntry[str]]) -> None:
        if not rel:
            self.root = _root_listing(entries)
            return
        if not stat.S_ISDIR(before.st_mode) or max(before.st_mtime_ns, before.st_ctime_ns) > self.settled:
            self.trusted = False
        self.dirs.append((rel, before.st_ino, before.st_mtime_ns, before.st_ctime_ns))


def load(root: Path) -> Stamp | None:
    """The stamp left in the library, or None (absent, a link, unreadable, another version)."""
    try:
        raw = read_bytes(root / STAMP_NAME)
        if len(raw) > MAX_BYTES:
            return None
        data = json.loads(raw)
        if data.get("v") != VERSION:
            return None
        return Stamp(str(data["paths"]), tuple((str(n), str(k), int(i)) for n, k, i in data["root"]),
                     tuple((str(r), int(i), int(m), int(c)) for r, i, m, c in data["dirs"]))
    except (OSError, ArchiverError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _dir_times(root: Path, rel: str) -> tuple[int, int, int] | None:
    try:
        st = os.lstat(os.path.join(root, rel))
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns) if stat.S_ISDIR(st.st_mode) else None


def unchanged(root: Path, stamp: Stamp) -> bool:
    """True when every folder still holds the names it held when the stamp was taken."""
    try:
        if _root_entries(root) != stamp.root:
            return False
    except OSError:
        return False
    return all(_dir_times(root, rel) == (ino, mtime, ctime) for rel, ino, mtime, ctime in stamp.dirs)


def save(root: Path, seen: Recorder, paths: str) -> bool:
    """Leave a stamp of what the walk saw; False (and none left) when a folder changed too
    recently to be trusted, or the library cannot be written."""
    if not seen.trusted or seen.root is None:
        discard(root)
        return False
    try:
        body = {"v": VERSION, "paths": paths, "root": seen.root, "dirs": sorted(seen.dirs)}
        atomic_write(root / STAMP_NAME, json.dumps(body, separators=(",", ":")).encode())
    except (OSError, ArchiverError):
        return False
    return True


def discard(root: Path) -> None:
    """Remove the stamp (a link named like it is removed, never followed)."""
    for name in (STAMP_NAME, STAMP_NAME + PART):
        try:
            os.unlink(root / name)
        except OSError:
            pass
