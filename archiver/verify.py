"""`archiver verify`: is every archived file still there, with its recorded size and sha256?

Also lists orphans: files under the library root that no asset row claims (the database, its
lock and lyrics sidecars are expected and not orphans), and symbolic links found at archived
paths or anywhere in the library: none of them is ever followed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sqlalchemy import text

from .errors import UnsafePath
from .fs import sha256_file, sidecars, walk_library
from .store import Store


@dataclass
class VerifyReport:
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # archived paths that are now symbolic links
    bad_ids: list[int] = field(default_factory=list)  # assets to fetch again on --repair

    @property
    def clean(self) -> bool:
        return not (self.missing or self.changed or self.orphans or self.links)


def verify_library(root: Path, store: Store, progress: Callable[[str], None] | None = None) -> VerifyReport:
    report = VerifyReport()
    with store.connect() as conn:
        rows = list(conn.execute(text(
            "SELECT id, path, size, sha256 FROM assets WHERE state = 'downloaded' AND path IS NOT NULL ORDER BY path")))
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
    beside = sidecars(claimed)
    report.orphans = sorted(p for p in (on_disk | links) - claimed if p not in beside)
    return report
