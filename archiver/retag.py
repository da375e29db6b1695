"""Tags from the database: what a clip's tags say, and rewriting them on archived files.

`archive` tags each file as it arrives; `archiver retag` rewrites archived files after a change of
settings. Neither path leaves a file half-written: the rewrite happens on a copy that replaces
the original only once it is complete and synced. No HTTP code is needed here.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .config import Config
from .errors import ArchiverError, StorageError, UnsafePath
from .fs import STORAGE_ERRNOS, TAGGING, atomic_write, create_new, open_read, place, read_bytes, sha256_file, \
    storage_error, sync_file
from .models import Asset, Clip, Task
from .store import Store
from .tagging import TagData, tag_file


def created_of(clip: Clip, task: Task) -> datetime | None:
    """When a clip was made, as tags, paths and queries all read it.

    The store gives every clip one when it first records it (its task's when the payload has none);
    `task` is unused and kept so that archive's calls read alike.
    """
    return clip.created_at


def tag_data(clip: Clip, task: Task, config: Config, cover: bytes | None) -> TagData:
    style = (clip.tags or "").split(",")[0].strip() or None
    values = {"source": clip.source, "model": clip.model or "", "task_id": task.task_id,
              "title": clip.title or "", "style": style or ""}
    artist = (config.tag_artist or "{model}").format_map(_Blank(values)).strip() or clip.source
    album = (config.tag_album or "archiver: {source}").format_map(_Blank(values)).strip() or None
    comment_bits = [f"style: {clip.tags}" if clip.tags else "", f"model: {clip.model}" if clip.model else ""]
    return TagData(
        title=clip.title or clip.clip_id,
        artist=artist,
        album=album,
        date=created.date().isoformat() if (created := created_of(clip, task)) else None,
        genre=style,
        comment="; ".join(b for b in comment_bits if b) or None,
        lyrics=clip.lyrics,
        duration=clip.duration,
        source=clip.source,
        task_id=task.task_id,
        clip_id=clip.clip_id,
        model=clip.model,
        seed=clip.seed,
        source_url=clip.audio_url,
        cover=cover,
    )


class _Blank(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return ""


def write_lyrics(audio: Path, lyrics: str) -> None:
    """The lyrics sidecar beside an audio file, written whole or not at all."""
    atomic_write(audio.with_suffix(".lrc"), (lyrics.rstrip("\n") + "\n").encode("utf-8"))


def retag_file(path: Path, data: TagData, id3_version: int) -> tuple[int, str, bool]:
    """Rewrite the tags of an archived file without ever leaving it half-written."""
    part = path.with_name(path.name.rpartition(".")[0] + TAGGING)  # a download resumes `.part`
    try:
        with open_read(path) as src, create_new(part) as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
        outcome = tag_file(part, data, id3_version=id3_version)
        sync_file(part)
        size, digest = sha256_file(part)
        place(part, path, owned=True)
    except OSError as exc:
        part.unlink(missing_ok=True)
        if exc.errno in STORAGE_ERRNOS:
            raise storage_error(exc, path) from None
        raise
    finally:
        if part.exists():
            part.unlink(missing_ok=True)
    return size, digest, outcome.tagged


@dataclass
class RetagSummary:
    retagged: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)


def retag_library(config: Config, store: Store, clip_keys: set[tuple[str, str]] | None = None) -> RetagSummary:
    """Rewrite the tags of archived audio from the database (after a config change, say).

    No download happens; size and sha256 in the database follow the rewritten files.
    `clip_keys` limits it to some (source, clip_id) pairs.
    """
    from sqlmodel import col, select

    summary = RetagSummary()
    with store.session() as s:
        rows = list(s.exec(select(Asset, Clip, Task).join(Clip, col(Clip.id) == Asset.clip_pk)
                           .join(Task, col(Task.id) == Clip.task_pk)
                           .where(Asset.kind == "audio", Asset.state == "downloaded")))
        covers = {a.clip_pk: a.path for a in s.exec(select(Asset).where(Asset.kind == "image",
                                                                         Asset.state == "downloaded"))}
    for asset, clip, task in rows:
        if clip_keys is not None and (clip.source, clip.clip_id) not in clip_keys:
            continue
        path = config.library / (asset.path or "")
        cover = None
        if covers.get(clip.id):
            try:
                cover = read_bytes(config.library / covers[clip.id])
            except (OSError, UnsafePath):
                cover = None
        try:
            size, digest, tagged = retag_file(path, tag_data(clip, task, config, cover), config.id3_version)
        except StorageError:
            raise
        except (ArchiverError, OSError) as exc:
            summary.errors.append(f"{asset.path}: {exc}")
            continue
        if digest == asset.sha256:
            summary.unchanged += 1
        else:
            summary.retagged += 1
        store.asset_done(asset.id or 0, path=asset.path or "", size=size, sha256=digest, tagged=tagged,
                         warning=asset.warning, transfer=False)
        if config.lyrics_sidecar and clip.lyrics:
            write_lyrics(path, clip.lyrics)
    return summary
