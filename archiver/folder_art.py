"""Folder covers: `cover.jpg` in a task's own folder, for players and beets' fetchart.

Music players (Navidrome, Jellyfin, foobar2000) and beets look for `cover.*`/`folder.*` beside
the audio; the embedded cover is per file. A folder gets one only when it belongs to one task:

- the path template has `{task_id}` (whole, no format spec: a cut id could be shared) in a
  directory part, so each task renders its own folder; and
- the database records no file of another task under that folder (a template changed since,
  or an id that sanitizes like another's).

The cover is the image of the task's first clip in that folder (by database id). A cover file is
archiver's when its sha256 is that of an archived image: only then is it ever replaced, and
`verify` does not call it an orphan. Any other `cover.*` or `folder.*` there is the user's,
and the folder is left alone.
"""

from __future__ import annotations

import hashlib
import os
import string
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from sqlalchemy import text

from .config import Config
from .errors import ArchiverError, UnsafePath
from .fs import PART, create_new, place, read_bytes, sha256_file, sync_file
from .paths import DEFAULT_TEMPLATE, resolve_inside, validate_template
from .store import Store

COVER_STEMS = frozenset({"cover", "folder"})
COVER_EXTS = frozenset({"jpg", "jpeg", "png", "gif", "webp"})


@dataclass
class FolderCovers:
    written: int = 0
    warnings: list[str] = field(default_factory=list)


def is_cover_name(name: str) -> bool:
    """`cover.jpg`, `Folder.PNG`…: a name players read as a folder's art."""
    stem, _, ext = name.rpartition(".")
    return stem.casefold() in COVER_STEMS and ext.lower() in COVER_EXTS


def gives_task_folder(template: str) -> bool:
    """Whether every task renders into a folder of its own: a whole `{task_id}` before a `/`."""
    try:
        items = list(string.Formatter().parse(validate_template(template)))
    except (ArchiverError, ValueError):
        return False
    seen = False
    for literal, name, spec, _conversion in items:
        if seen and "/" in literal:
            return True
        if name == "task_id" and not spec:
            seen = True
    return False


def enabled(config: Config) -> bool:
    return config.folder_cover and gives_task_folder(config.path_template or DEFAULT_TEMPLATE)


def write_folder_covers(config: Config, store: Store, task_pks: set[int]) -> FolderCovers:
    """Give the folders of these tasks their cover, where the rules above allow it."""
    result = FolderCovers()
    if not task_pks or not enabled(config):
        return result
    for task_pk in sorted(task_pks):
        for folder, image in _folders(store, task_pk).items():
            try:
                result.written += _write(config.library, store, task_pk, folder, image)
            except (OSError, ArchiverError) as exc:
                result.warnings.append(f"{folder}: folder cover not written: {exc}")
    return result


def _folders(store: Store, task_pk: int) -> dict[str, str]:
    """Folder of the task's archived audio -> image path of its first clip there with a cover."""
    with store.connect() as conn:
        rows = list(conn.execute(text(
            """SELECT au.path, im.path FROM clips c
               JOIN assets au ON au.clip_pk = c.id AND au.kind = 'audio' AND au.state = 'downloaded'
                              AND au.path IS NOT NULL
               LEFT JOIN assets im ON im.clip_pk = c.id AND im.kind = 'image' AND im.state = 'downloaded'
                                   AND im.path IS NOT NULL
               WHERE c.task_pk = :task ORDER BY c.id"""), {"task": task_pk}))
    found: dict[str, str] = {}
    for audio, image in rows:
        folder = PurePosixPath(audio).parent.as_posix()
        if image and folder != "." and folder not in found:
            found[folder] = image
    return found


def _only_task(store: Store, task_pk: int, folder: str) -> bool:
    prefix = folder + "/"
    with store.connect() as conn:
        others = conn.execute(text(
            """SELECT COUNT(*) FROM assets a JOIN clips c ON c.id = a.clip_pk
               WHERE a.path IS NOT NULL AND substr(a.path, 1, :n) = :prefix AND c.task_pk != :task"""),
            {"n": len(prefix), "prefix": prefix, "task": task_pk}).scalar()
    return not others


def _recorded(store: Store, rel: str) -> bool:
    """Whether a file at `rel` is some clip's archived file (a clip titled "cover", say)."""
    with store.connect() as conn:
        return conn.execute(text("SELECT 1 FROM assets WHERE path = :path LIMIT 1"), {"path": rel}).first() is not None


def _ours(store: Store, digest: str) -> bool:
    with store.connect() as conn:
        return conn.execute(text("SELECT 1 FROM assets WHERE kind = 'image' AND state = 'downloaded' "
                                 "AND sha256 = :digest LIMIT 1"), {"digest": digest}).first() is not None


def _write(root: Path, store: Store, task_pk: int, folder: str, image: str) -> int:
    """1 when the folder's cover was written or replaced, 0 when it is left as it is."""
    ext = image.rpartition(".")[2].lower()
    if ext not in COVER_EXTS or not _only_task(store, task_pk, folder):
        return 0
    directory = resolve_inside(root, PurePosixPath(folder))
    target = directory / f"cover.{ext}"
    with os.scandir(directory) as scan:
        present = [entry for entry in scan if is_cover_name(entry.name)]
    data = read_bytes(resolve_inside(root, PurePosixPath(image)))
    owned = False
    for entry in present:
        if entry.name != target.name or entry.is_symlink() or not entry.is_file(follow_symlinks=False):
            return 0  # the user's folder art, or ours under another name: either way it has one
        if _recorded(store, f"{folder}/{target.name}"):
            return 0  # a clip's own archived file under this name: never replaced by a folder cover
        _size, digest = sha256_file(target)
        if not _ours(store, digest) or digest == hashlib.sha256(data).hexdigest():
            return 0
        owned = True
    # A fleet's workers may write one folder's cover at once: each under its own temporary name,
    # and the first one placed stays (the rename refuses an existing name; both are the task's art).
    part = target.with_name(target.name + ("" if store.fleet is None else store.fleet.tag) + PART)
    try:
        with create_new(part) as fh:
            fh.write(data)
        sync_file(part)
        place(part, target, owned=owned)
    except UnsafePath:
        if owned or os.path.islink(target) or not os.path.isfile(target):
            raise
        return 0  # a cover placed a moment ago (by another worker): the folder has one
    finally:
        if os.path.lexists(part) and not os.path.islink(part):
            part.unlink()
    return 1

