"""`archiver rebuild`: recreate a lost or damaged database from the archived files themselves.

Every archived audio file carries its provenance in its tags (source, task id, clip id, title,
lyrics, duration, model, seed, source URL), and its cover sits beside it under the same stem, so a
user who lost the database loses no clip: this walks the library and writes the rows back.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from .fs import DB_SUFFIXES, REBUILDING, fsync_path, open_read, sha256_file, sync_file, walk_library
from .errors import ArchiverError, DatabaseError, TaggingError, UnsafePath
from .media import AUDIO, IMAGE, sniff
from .providers import SOURCES
from .records import ClipRecord, Status, TaskRecord, duration, timestamp
from .render import clean_line
from .store import Store
from .tagging import read_tags


@dataclass
class RebuildReport:
    audio: int = 0
    covers: int = 0
    tasks: int = 0
    skipped: list[str] = field(default_factory=list)  # files without provenance tags
    moved_aside: Path | None = None
    # One line per file left out for another reason: a source archiver does not know, or a
    # clip that another file already claims. Each is safe to print (control characters removed).
    problems: list[str] = field(default_factory=list)


def keep_aside(db_path: Path) -> Path:
    """A second name for the old database and its WAL files (`archiver.db.damaged-…`), made
    while the originals stay in place: hard links, or copies where the file system has none.
    The database keeps its name until the new one is renamed over it."""
    when = time.time()
    while True:  # a name no earlier rebuild took (one stopped a moment ago may have)
        target = db_path.with_name(f"{db_path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S', time.localtime(when))}")
        if not any(os.path.lexists(kept) for kept in _files_of(target)):
            break
        when += 1
    for old, kept in zip(_files_of(db_path), _files_of(target)):
        if old.exists():
            try:
                os.link(old, kept)
            except OSError:
                shutil.copy2(old, kept)
    return target


def _files_of(database: Path) -> list[Path]:
    """The database file and its WAL, shared-memory and journal files, in DB_SUFFIXES order."""
    return [database.with_name(database.name + suffix) for suffix in DB_SUFFIXES]


def healthy(db_url: str) -> bool:
    """Readable and whole. A bad page past the schema raises from the check itself (as an
    SQLAlchemy error): that too means "not healthy", so `rebuild` goes ahead instead of refusing."""
    try:
        with Store(db_url, create=False) as store:
            return store.execute("PRAGMA quick_check")[0][0] == "ok"
    except (DatabaseError, IndexError, SQLAlchemyError, sqlite3.DatabaseError):
        return False


def rebuild(library: Path, db_url: str, *, force: bool = False) -> RebuildReport:
    """The files are read and the new database written beside the old one first; only then is
    the old one given its `.damaged-…` name too (a hard link), its WAL files removed, and the new
    one renamed over it: a rebuild stopped at any moment leaves a database at its name, the old
    one (as of its last checkpoint, once its WAL is gone) or the new one."""
    report = RebuildReport()
    db_path = Path(db_url.removeprefix("sqlite:///")) if db_url.startswith("sqlite:///") else None
    if db_path is not None and db_path.exists() and healthy(db_url) and not force:
        raise ArchiverError(f"{db_path} is readable; pass --force to rebuild it anyway "
                            "(the current file is kept beside it)")
    files, _parts, _links = walk_library(library)
    records, placed = _scan(library, sorted(files), report)
    hashed = {key: sha256_file(library / rel) for key, (rel, _url) in placed.items()}
    building = None if db_path is None else db_path.with_name(db_path.name + REBUILDING)
    if building is not None:
        for path in _files_of(building):  # what a rebuild stopped before left
            path.unlink(missing_ok=True)
    with Store(db_url if building is None else f"sqlite:///{building}") as store:
        result = store.apply(records)
        report.tasks = result.tasks_added
        for (source, clip_id, kind), (rel, url) in placed.items():
            size, digest = hashed[(source, clip_id, kind)]
            store.record_file(source, clip_id, kind, path=rel, size=size, sha256=digest, url=url,
                              tagged=kind == "audio")
    if building is not None and db_path is not None:
        with closing(sqlite3.connect(building)) as conn:  # one file, no WAL beside it, to rename
            conn.execute("PRAGMA journal_mode = DELETE")
        sync_file(building)
        if any(path.exists() for path in _files_of(db_path)):
            report.moved_aside = keep_aside(db_path)
            fsync_path(db_path.parent)
        for path in _files_of(db_path)[1:]:  # the old WAL beside the new file would be replayed into it
            path.unlink(missing_ok=True)
        os.replace(building, db_path)
        fsync_path(db_path.parent)
    return report


def _scan(library: Path, files: list[str], report: RebuildReport
          ) -> tuple[list[TaskRecord], dict[tuple[str, str, str], tuple[str, str | None]]]:
    by_stem: dict[str, list[str]] = {}
    for rel in files:
        by_stem.setdefault(rel.rsplit(".", 1)[0], []).append(rel)
    kinds = {rel: _kind(library / rel) for rel in files}
    tasks: dict[tuple[str, str], list[ClipRecord]] = {}
    placed: dict[tuple[str, str, str], tuple[str, str | None]] = {}
    for rel in files:  # in path order, so the first of two files claiming a clip is always the same
        if kinds[rel] not in AUDIO | {"mp4"}:
            continue
        group = by_stem[rel.rsplit(".", 1)[0]]
        try:
            tags = read_tags(library / rel)
        except (TaggingError, OSError):
            tags = {}
        if not (tags.get("source") and tags.get("task_id") and tags.get("clip_id")):
            report.skipped.append(rel)
            continue
        if tags["source"] not in SOURCES:
            report.problems.append(clean_line(
                f"skipped {rel}: its tags name source {tags['source']!r}, which archiver does not know"))
            continue
        claimed = placed.get((tags["source"], tags["clip_id"], "audio"))
        if claimed is not None:
            report.problems.append(clean_line(
                f"two files claim clip {tags['source']}/{tags['clip_id']}: kept {claimed[0]}, "
                f"not recorded {rel} (neither deleted)"))
            continue
        clip = ClipRecord(
            clip_id=tags["clip_id"], title=tags.get("title"), lyrics=tags.get("lyrics"),
            duration=duration(tags.get("duration")), model=tags.get("model"), seed=tags.get("seed"),
            tags=_style(tags.get("comment")), created_at=timestamp(tags.get("date")) if tags.get("date") else None,
            audio_url=tags.get("source_url"), state="succeeded",
            raw={"rebuilt_from": rel},
        )
        tasks.setdefault((tags["source"], tags["task_id"]), []).append(clip)
        placed[(tags["source"], clip.clip_id, "audio")] = (rel, clip.audio_url)
        report.audio += 1
        for image in (r for r in group if kinds[r] in IMAGE):
            placed[(tags["source"], clip.clip_id, "image")] = (image, None)
            report.covers += 1
    now = datetime.now(timezone.utc)
    records = [
        TaskRecord(source=source, task_id=task_id, status=Status.SUCCEEDED, provider_status="REBUILT",
                   progress=100, finished_at=now, clips=tuple(clips), raw={"rebuilt": True})
        for (source, task_id), clips in tasks.items()
    ]
    return records, placed


def _kind(path: Path) -> str | None:
    try:
        with open_read(path) as fh:
            return sniff(fh.read(64))
    except (OSError, UnsafePath):
        return None


def _style(comment: str | None) -> str | None:
    """The style tags, back out of the comment archiver wrote ("style: a, b; model: m")."""
    if not comment:
        return None
    for part in comment.split("; "):
        if part.startswith("style: "):
            return part[len("style: "):]
    return None


__all__ = ["RebuildReport", "keep_aside", "rebuild"]
