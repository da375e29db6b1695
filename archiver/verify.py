"""`archiver verify`: is every archived file still there, with its recorded size and sha256?

Damage is what the exit code reports: an archived file missing, changed, or replaced by a
symbolic link (never followed). Besides that it lists orphan media: audio, image and video files
(known by their extension or by their first bytes) that no asset row claims, such as a song a
run completed but could not record. Everything else under the root belongs to the user and is
none of verify's business: playlists, notes, lyrics sidecars, the database and its lock, and the
folder covers archiver writes itself (`folder_art`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sqlalchemy import text

from .errors import UnsafePath
from .folder_art import is_cover_name
from .fs import open_read, sha256_file, walk_library
from .media import AUDIO, IMAGE, VIDEO, sniff
from .store import Store

MEDIA_FORMATS = AUDIO | IMAGE | VIDEO
MEDIA_EXTS = MEDIA_FORMATS | {"jpeg", "m4b", "oga", "weba"}
SNIFF_BYTES = 64


@dataclass
class VerifyReport:
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)  # media files no row claims: listed, not damage
    links: list[str] = field(default_factory=list)  # archived paths that are now symbolic links
    bad_ids: list[int] = field(default_factory=list)  # assets to fetch again on --repair

    @property
    def clean(self) -> bool:
        """No archived file is missing, changed or a link: what a cron job's exit code means."""
        return not (self.missing or self.changed or self.links)


def verify_library(root: Path, store: Store, progress: Callable[[str], None] | None = None) -> VerifyReport:
    report = VerifyReport()
    with store.connect() as conn:
        rows = list(conn.execute(text(
            "SELECT id, path, size, sha256 FROM assets WHERE state = 'downloaded' AND path IS NOT NULL ORDER BY path")))
        covers = {digest for (digest,) in conn.execute(text(
            "SELECT sha256 FROM assets WHERE kind = 'image' AND state = 'downloaded' AND sha256 IS NOT NULL"))}
    on_disk, _parts, links = walk_library(root)
    claimed = set()
    for asset_id, path, size, digest in rows:
        claimed.add(path)
        report.checked += 1
        if progress:
            progress(path)
        if path in links:
            report.links.append(path)  # not ours any more; --repair leaves it to the user
            continue
        if path not in on_disk:
            report.missing.append(path)
            report.bad_ids.append(asset_id)
            continue
        try:
            real_size, real_digest = sha256_file(root / path)
        except (OSError, UnsafePath):
            report.changed.append(path)
            report.bad_ids.append(asset_id)
            continue
        if real_size != size or real_digest != digest:
            report.changed.append(path)
            report.bad_ids.append(asset_id)
    report.orphans = sorted(p for p in links - claimed if _ext(p) in MEDIA_EXTS)
    report.orphans += sorted(p for p in on_disk - claimed if _orphan_media(root, p, covers))
    report.orphans.sort()
    return report


def _ext(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name.rpartition(".")[2].lower() if "." in name else ""


def _orphan_media(root: Path, path: str, covers: set[str]) -> bool:
    """Whether an unclaimed regular file is media (by extension, else by its first bytes) that
    is not one of archiver's own folder covers."""
    if _ext(path) not in MEDIA_EXTS:
        try:
            with open_read(root / path) as fh:
                head = fh.read(SNIFF_BYTES)
        except (OSError, UnsafePath):
            return False
        if sniff(head) not in MEDIA_FORMATS:
            return False
    if is_cover_name(path.rsplit("/", 1)[-1]):
        try:
            return sha256_file(root / path)[1] not in covers
        except (OSError, UnsafePath):
            return True
    return True
