"""What the benchmarks run against: a media set on disk for nginx, and big synthetic libraries.

The media set comes from the simulator itself (its padded MP3s and shipped covers), written once
under the exact URL paths its payloads use, so nginx can serve what the simulator would. The
20,000-clip library is synthesized quickly but honestly: rows go in through `Store.apply` (so
the FTS index, triggers and schema are the product's), the "downloaded" state is set with one SQL
statement per batch, and every recorded file exists on disk under the default folder layout.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import httpx

from archiver.paths import DEFAULT_TEMPLATE, clip_fields, render_relpath, sibling
from archiver.records import ClipRecord, Status, TaskRecord
from archiver.simulator import Simulator
from archiver.simulator_media import make_lyrics, make_tags, make_title
from archiver.store import Store

SOURCES = ("ccapi-suno", "ccapi-producer", "mountsea", "acedata", "aimusicapi")


@dataclass(frozen=True)
class MediaSet:
    """Tasks registered in a simulator whose media URLs point at `root` (served by nginx)."""

    source: str
    task_ids: list[str]
    urls: list[str]  # every audio and cover URL, as the payloads give them
    total_bytes: int


def build_media(sim: Simulator, root: Path | None, *, clips: int, audio_bytes: int,
                source: str = "ccapi-suno") -> MediaSet:
    """Add `clips` finished clips (two per task) and write their files under `root`.

    With `root` None the simulator serves the media itself (the nginx fallback).
    """
    task_ids = [sim.add_task(source, steps=0, clips=2, audio_bytes=audio_bytes) for _ in range(clips // 2)]
    urls = payload_urls(sim, source, task_ids)
    total = 0
    for url in urls:
        data = sim.media_bytes(url)
        total += len(data)
        if root is not None:
            target = root / urlsplit(url).path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return MediaSet(source, task_ids, urls, total)


def payload_urls(sim: Simulator, source: str, task_ids: list[str]) -> list[str]:
    """The audio and image URLs of the tasks, read from the batch fetch endpoint like a client."""
    platform = source.split("-", 1)[1]
    urls: list[str] = []
    with httpx.Client(headers={"Authorization": f"Bearer {sim.tokens['ccapi']}"}, timeout=30) as client:
        for start in range(0, len(task_ids), 50):
            answer = client.post(sim.provider_url("ccapi") + f"{platform}/fetch",
                                 json={"ids": task_ids[start:start + 50]})
            answer.raise_for_status()
            for record in answer.json()["data"]:
                for clip in record["data"]["clips"]:
                    urls += [clip["audio_url"], clip["image_url"]]
    return urls


@dataclass(frozen=True)
class Library:
    root: Path
    db: Path
    clips: int
    files: int
    directories: int


def build_library(root: Path, clips: int, *, seed: int = 7, batch: int = 2000) -> Library:
    """A library of `clips` archived clips (audio + cover each, tiny real files on disk)."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    db = root / "archiver.db"
    epoch = datetime(2024, 1, 1, tzinfo=timezone.utc)
    with Store(f"sqlite:///{db}") as store:
        records: list[TaskRecord] = []
        for number in range(clips // 2):
            source = SOURCES[number % len(SOURCES)]
            created = epoch + timedelta(minutes=rng.randrange(3 * 365 * 24 * 60))
            records.append(_task(rng, source, number, created))
            if len(records) >= batch:
                store.apply(records)
                records = []
        if records:
            store.apply(records)
    files, directories = _mark_downloaded(root, db)
    return Library(root, db, clips, files, directories)


def _task(rng: random.Random, source: str, number: int, created: datetime) -> TaskRecord:
    lyrics, tags = make_lyrics(rng), make_tags(rng)
    clips = tuple(
        ClipRecord(
            clip_id=f"{rng.getrandbits(128):032x}", title=make_title(rng), tags=tags, lyrics=lyrics,
            duration=round(rng.uniform(60, 240), 2), model="chirp-v4" if source.startswith("ccapi") else "FUZZ-2.0",
            seed=str(rng.getrandbits(32)), created_at=created + timedelta(seconds=index),
            audio_url=f"https://cdn.example.invalid/{number}-{index}.mp3",
            image_url=f"https://cdn.example.invalid/{number}-{index}.jpg", state="complete",
        )
        for index in range(2)
    )
    return TaskRecord(source=source, task_id=f"bench-{number:06d}", status=Status.SUCCEEDED,
                      provider_status="SUCCESS", progress=100, created_at=created,
                      finished_at=created + timedelta(seconds=60), updated_at=created + timedelta(seconds=60),
                      clips=clips, raw={"task_id": f"bench-{number:06d}", "status": "SUCCESS"})


AUDIO_BYTES = b"\xff\xfb\x90\x64" + bytes(60)  # an MPEG frame header: tiny but sniffs as mp3
IMAGE_BYTES = b"\xff\xd8\xff\xe0" + bytes(28) + b"\xff\xd9"


def _mark_downloaded(root: Path, db: Path) -> tuple[int, int]:
    """Give every asset its default-layout path, write the file, record it as downloaded."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT a.id, a.kind, c.source, t.task_id, c.clip_id, c.title, c.tags, c.lyrics, c.duration, "
            "c.model, c.seed, c.created_at FROM assets a JOIN clips c ON c.id = a.clip_pk "
            "JOIN tasks t ON t.id = c.task_pk ORDER BY c.id, a.kind").fetchall()
        digests = {kind: (len(data), hashlib.sha256(data).hexdigest())
                   for kind, data in (("audio", AUDIO_BYTES), ("image", IMAGE_BYTES))}
        stems: dict[str, PurePosixPath] = {}
        updates = []
        made: set[Path] = set()
        now = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        for asset_id, kind, source, task_id, clip_id, *rest in rows:
            stem = stems.get(clip_id)
            if stem is None:
                fields = clip_fields(_ClipView(clip_id, *rest), source=source, task_id=task_id)
                stem = stems[clip_id] = render_relpath(DEFAULT_TEMPLATE, fields, "mp3")
            rel = stem if kind == "audio" else sibling(stem, "jpg")
            path = root / rel
            if path.parent not in made:
                path.parent.mkdir(parents=True, exist_ok=True)
                made.add(path.parent)
            path.write_bytes(AUDIO_BYTES if kind == "audio" else IMAGE_BYTES)
            size, digest = digests[kind]
            updates.append((rel.as_posix(), size, digest, kind == "audio", now, now, asset_id))
        with conn:
            conn.executemany("UPDATE assets SET state = 'downloaded', path = ?, size = ?, sha256 = ?, "
                             "tagged = ?, downloaded_at = ?, updated_at = ?, attempts = 1 WHERE id = ?",
                             updates)
        return len(updates), len(made)
    finally:
        conn.close()


class _ClipView:
    """Just the attributes `paths.clip_fields` reads, from one SQL row."""

    def __init__(self, clip_id: str, title: str, tags: str, lyrics: str, duration: float, model: str,
                 seed: str, created_at: str) -> None:
        self.clip_id, self.title, self.tags, self.lyrics = clip_id, title, tags, lyrics
        self.duration, self.model, self.seed, self.negative_tags = duration, model, seed, None
        self.created_at = datetime.fromisoformat(created_at)
