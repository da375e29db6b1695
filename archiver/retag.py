"""Tags from the database: what a clip's tags say, and rewriting them on archived files.

`archive` tags each file as it arrives; `archiver retag` rewrites archived files after a change of
settings. Neither path leaves a file half-written: the rewrite happens on a copy that replaces
the original only once it is complete and synced. No HTTP code is needed here.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable, Sequence

from .config import DEFAULT_ALBUM, DEFAULT_ALBUMARTIST, DEFAULT_ARTIST, DEFAULT_TRACK, Config
from .errors import ArchiverError, StorageError, UnsafePath
from .fs import STORAGE_ERRNOS, TAGGING, atomic_write, create_new, is_link, open_read, place, read_bytes, \
    sha256_file, storage_error, sync_file, temp_path
from .models import Asset, Clip, Task
from .store import Store
from .tagging import TagData, tag_file


def created_of(clip: Clip, task: Task) -> datetime | None:
    """When a clip was made, as tags, paths and queries all read it.

    The store gives every clip one when it first records it (its task's when the payload has none);
    `task` is unused and kept so that archive's calls read alike.
    """
    return clip.created_at


def track_order(clips: Sequence[Clip], task: Task) -> list[Clip]:
    """A task's clips in track order: by creation time, then clip id, stable across runs."""
    def key(clip: Clip) -> tuple[bool, float, str]:
        created = created_of(clip, task)
        return created is None, created.timestamp() if created else 0.0, clip.clip_id
    return sorted(clips, key=key)


def task_tracks(store: Store, task: Task) -> list[Clip]:
    """The clips of a task that are (or will be) audio files: the tracks of its album."""
    return tracks_of(store, [task.id or 0]).get(task.id or 0, [])


def tracks_of(store: Store, task_pks: Iterable[int]) -> dict[int, list[Clip]]:
    """`task_tracks` of many tasks in a few queries (a run tags hundreds of files)."""
    from sqlmodel import col, select

    wanted = sorted(set(task_pks))
    found: dict[int, list[Clip]] = {pk: [] for pk in wanted}
    with store.session() as s:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            for clip in s.exec(select(Clip).join(Asset, col(Asset.clip_pk) == Clip.id)
                               .where(col(Clip.task_pk).in_(chunk), Asset.kind == "audio")):
                found[clip.task_pk or 0].append(clip)
    return found


def tag_data(clip: Clip, task: Task, config: Config, cover: bytes | None, tracks: Sequence[Clip]) -> TagData:
    """The tags of one clip. `tracks` are its task's clips with audio (`task_tracks`): the album."""
    ordered = track_order([*(t for t in tracks if t.clip_id != clip.clip_id), clip], task)
    style = (clip.tags or "").split(",")[0].strip() or None
    values = {"source": clip.source, "model": clip.model or "", "task_id": task.task_id,
              "title": clip.title or "", "style": style or "",
              "task_title": next((c.title for c in ordered if c.title), "") or task.task_id,
              "track": ordered.index(clip) + 1, "tracks": len(ordered)}

    def fill(template: str | None, default: str) -> str:
        return (default if template is None else template).format_map(_Blank(values)).strip()

    track = fill(config.tag_track, DEFAULT_TRACK)
    comment_bits = [f"style: {clip.tags}" if clip.tags else "", f"model: {clip.model}" if clip.model else ""]
    return TagData(
        title=clip.title or clip.clip_id,
        artist=fill(config.tag_artist, DEFAULT_ARTIST) or clip.source,
        album=fill(config.tag_album, DEFAULT_ALBUM) or None,
        albumartist=fill(config.tag_albumartist, DEFAULT_ALBUMARTIST) or None,
        track=(int(track), len(ordered)) if track.isascii() and track.isdigit() and int(track) else None,
        disc=(1, 1),
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


# Plain lyrics have no `[mm:ss.xx]` timings, so they are not LRC: `<stem>.txt` is the plain-text
# sidecar both Jellyfin (DefaultLyricProvider: .lrc, .elrc, .txt) and Navidrome (LyricsPriority
# ".lrc,.txt,embedded" since 0.56) read. Earlier versions wrote the same text as `<stem>.lrc`.
SIDECAR, OLD_SIDECAR = ".txt", ".lrc"
_LRC_TIME = re.compile(r"^\s*\[\d+:\d+(?:[.:]\d+)?\]", re.MULTILINE)


def _old_sidecar(audio: Path) -> Path | None:
    """Our `.lrc` of earlier versions; a real LRC (with timings) or a link is someone else's."""
    old = audio.with_suffix(OLD_SIDECAR)
    if is_link(old) or not old.is_file():
        return None
    try:
        text = read_bytes(old).decode("utf-8", "replace")
    except (OSError, UnsafePath):
        return None
    return None if _LRC_TIME.search(text) else old


def write_lyrics(audio: Path, lyrics: str, tag: str = "") -> bool:
    """The lyrics sidecar beside an audio file, written whole or not at all; an old `.lrc` of
    ours is renamed onto it first, so the two never exist side by side. True when there was no
    sidecar before (a fleet worker removes the one it created with a file it drops). `tag`: a
    fleet worker's, in the temporary name (claims.part_tag)."""
    new = audio.with_suffix(SIDECAR)
    data = (lyrics.rstrip("\n") + "\n").encode("utf-8")
    old = _old_sidecar(audio)
    created = not os.path.lexists(new)
    if old is not None and not os.path.lexists(new):
        place(old, new, owned=False)
    elif os.path.lexists(new) and (is_link(new) or read_bytes(new) not in (data, *_contents(old))):
        raise UnsafePath(f"{new.name} is not a lyrics sidecar of archiver's; left as it is")
    elif old is not None:
        old.unlink()  # the same text is already in `.txt`
    atomic_write(new, data, tag)
    return created


def _contents(path: Path | None) -> tuple[bytes, ...]:
    try:
        return (read_bytes(path),) if path is not None else ()
    except (OSError, UnsafePath):
        return ()


def migrate_lyrics(audio: Path) -> None:
    """Rename an old `.lrc` sidecar of ours to `.txt` when no lyrics are written (sidecars off)."""
    old = _old_sidecar(audio)
    if old is None:
        return
    new = audio.with_suffix(SIDECAR)
    if not os.path.lexists(new):
        place(old, new, owned=False)
    elif not is_link(new) and new.is_file() and read_bytes(new) == read_bytes(old):
        old.unlink()


def retag_file(path: Path, data: TagData, id3_version: int, tag: str = "") -> tuple[int, str, bool]:
    """Rewrite the tags of an archived file without ever leaving it half-written (`tag`: a fleet
    worker's, in the temporary name, see claims.part_tag)."""
    part = temp_path(path, path.name.rpartition(".")[0], tag + TAGGING)  # a download resumes `.part`
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
        tracks: dict[int, list[Clip]] = {}
        for clip in s.exec(select(Clip).join(Asset, col(Asset.clip_pk) == Clip.id).where(Asset.kind == "audio")):
            tracks.setdefault(clip.task_pk, []).append(clip)
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
            data = tag_data(clip, task, config, cover, tracks.get(task.id or 0, []))
            size, digest, tagged = retag_file(path, data, config.id3_version)
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
        try:
            if config.lyrics_sidecar and clip.lyrics:
                write_lyrics(path, clip.lyrics)
            else:
                migrate_lyrics(path)
        except StorageError:
            raise
        except (ArchiverError, OSError) as exc:
            summary.errors.append(f"{asset.path}: lyrics sidecar: {exc}")
    return summary
