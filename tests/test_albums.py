"""Each generation task is one album: its clips are tracks 1..n of n under one album artist.

Read back with beets' `mediafile` (and ffprobe), not with the mutagen code that wrote them.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from archiver.config import load_config
from archiver.errors import ConfigError
from archiver.models import Clip, Task
from archiver.retag import tag_data
from conftest import sync_now as sync

mediafile = pytest.importorskip("mediafile")
AUDIO_EXTS = {".mp3", ".m4a", ".flac", ".opus", ".ogg", ".wav"}
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def config(tmp_path: Path, toml: str = "") -> object:
    path = tmp_path / "config.toml"
    path.write_text(f'library = "{tmp_path / "lib"}"\n{toml}', encoding="utf-8")
    return load_config(config_file=path, env={})


def clips_of_a_task() -> tuple[Task, list[Clip]]:
    task = Task(id=1, source="ccapi-suno", task_id="task-42", created_at=T0)
    clips = [Clip(id=i, source="ccapi-suno", clip_id=cid, task_pk=1, title=title, model="chirp-v4",
                  created_at=T0 + timedelta(seconds=delay))
             for i, (cid, title, delay) in enumerate([("c", "Rain (take 3)", 5), ("b", "Rain", 0),
                                                       ("a", "Rain (take 2)", 0)], 1)]
    return task, clips


def test_a_task_is_one_album_in_a_stable_order(tmp_path: Path) -> None:
    task, clips = clips_of_a_task()
    cfg = config(tmp_path)
    tags = {c.clip_id: tag_data(c, task, cfg, None, list(reversed(clips))) for c in clips}
    # Same creation time: by clip id; later: after.
    assert {cid: t.track for cid, t in tags.items()} == {"a": (1, 3), "b": (2, 3), "c": (3, 3)}
    assert {t.album for t in tags.values()} == {"Rain (take 2)"}  # the first track's title
    assert {t.albumartist for t in tags.values()} == {"archiver"}
    assert {t.disc for t in tags.values()} == {(1, 1)}
    assert tags["a"].artist == "chirp-v4" and tags["a"].title == "Rain (take 2)"


def test_album_templates_follow_the_config(tmp_path: Path) -> None:
    task, clips = clips_of_a_task()
    cfg = config(tmp_path, 'album = "{task_title} [{task_id:.4}]"\nalbumartist = "My {source}"\n'
                           'artist = "{style}"\ntrack = ""\n')
    data = tag_data(clips[0], task, cfg, None, clips)
    assert (data.album, data.albumartist, data.track) == ("Rain (take 2) [task]", "My ccapi-suno", None)
    assert data.artist == "ccapi-suno"  # an empty artist falls back to the source


@pytest.mark.parametrize("toml", ['track = "{title}"', 'track = "{track}-{tracks}"', 'albumartist = "{nope}"',
                                  'album = "{track:x>"', 'albumartist = "{0}"'])
def test_bad_album_templates_stop_at_load(tmp_path: Path, toml: str) -> None:
    with pytest.raises(ConfigError, match="not a valid template"):
        config(tmp_path, toml + "\n")


def test_good_track_templates_load(tmp_path: Path) -> None:
    assert config(tmp_path, 'track = "{track:02}"\n').tag_track == "{track:02}"  # type: ignore[attr-defined]


def audio_rows(library: Path) -> list[dict]:
    con = sqlite3.connect(library / "archiver.db")
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute(
        "select a.path, c.clip_id, c.title, c.lyrics, c.tags, t.task_id as task from assets a "
        "join clips c on c.id = a.clip_pk join tasks t on t.id = c.task_pk "
        "where a.kind = 'audio' and a.state = 'downloaded' order by c.id")]
    con.close()
    return rows


def assert_albums(library: Path, rows: list[dict]) -> None:
    """Every task reads as one album with tracks 1..n of n, every field through mediafile."""
    by_task: dict[str, list[tuple[dict, object]]] = defaultdict(list)
    for row in rows:
        by_task[row["task"]].append((row, mediafile.MediaFile(str(library / row["path"]))))
    for entries in by_task.values():
        files = [mf for _, mf in entries]
        n = len(files)
        assert sorted(mf.track for mf in files) == list(range(1, n + 1))
        assert {(mf.tracktotal, mf.disc, mf.disctotal) for mf in files} == {(n, 1, 1)}
        first = next(mf for mf in files if mf.track == 1)
        assert {mf.album for mf in files} == {first.title}
        for row, mf in entries:
            assert mf.albumartist == "archiver"
            assert mf.title == row["title"] and mf.artist
            assert mf.year == 2026 and mf.month and mf.day
            assert mf.genre == row["tags"].split(",")[0].strip()
            assert mf.lyrics == row["lyrics"]
            assert mf.images and mf.images[0].mime_type == "image/jpeg"
            assert mf.length > 1.5


@pytest.mark.parametrize("id3_version", [3, 4])
def test_synced_library_reads_as_albums(sim, sim_cli, library: Path, id3_version: int) -> None:
    tasks = {sim.add_task("ccapi-suno", steps=0, clips=3, lyrics="hallo\nWelt"): "mp3",
             sim.add_task("acedata", steps=0, lyrics="привет"): "m4a",
             sim.add_task("aimusicapi", steps=0, audio_format="flac", lyrics="歌\n詞"): "flac"}
    for task, source in zip(tasks, ("ccapi-suno", "acedata", "aimusicapi")):
        assert sim_cli("add", source, task).exit_code == 0
    code, summary = sync(sim_cli, extra_config=f"id3_version = {id3_version}\n")
    assert code == 0, summary
    rows = audio_rows(library)
    assert {Path(r["path"]).suffix for r in rows} == {".mp3", ".m4a", ".flac"} and len(rows) == 7
    assert_albums(library, rows)
    if shutil.which("ffprobe"):
        for row in rows:
            out = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-of", "json",
                                  str(library / row["path"])], capture_output=True, text=True, check=True)
            tags = {k.lower(): v for k, v in json.loads(out.stdout)["format"]["tags"].items()}
            assert tags.get("album_artist", tags.get("albumartist")) == "archiver"
            assert tags["track"].partition("/")[0] in {"1", "2", "3"} and tags["disc"].startswith("1")


def test_retag_moves_an_old_library_to_albums(sim, sim_cli, library: Path) -> None:
    old = 'album = "archiver: {source}"\nalbumartist = ""\ntrack = ""\n'  # what earlier versions wrote
    for source in ("ccapi-suno", "acedata"):
        sim_cli("add", source, sim.add_task(source, steps=0))
    sync(sim_cli, extra_config=old)
    rows = audio_rows(library)
    before = [mediafile.MediaFile(str(library / r["path"])) for r in rows]
    assert {mf.track for mf in before} <= {0, None} and {mf.albumartist for mf in before} == {None}
    result = sim_cli("retag")
    assert result.exit_code == 0 and "retagged 4 file(s)" in result.output
    assert_albums(library, rows)
    assert sim_cli("verify").exit_code == 0


def test_demo_library_reads_as_albums_with_numbered_tracks(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    demo = tmp_path / "demo"
    subprocess.run([sys.executable, "-m", "archiver", "demo", "--dir", str(demo)], env=env, check=True,
                   capture_output=True, timeout=300)
    albums: dict[tuple[str, str], list[int]] = defaultdict(list)
    files = [p for p in demo.rglob("*") if p.suffix in AUDIO_EXTS]
    assert len(files) >= 10
    for path in files:
        mf = mediafile.MediaFile(str(path))
        assert mf.album and mf.albumartist == "archiver" and mf.disc == 1, path
        assert 1 <= mf.track <= mf.tracktotal, path
        albums[(mf.albumartist, mf.album)].append(mf.track)
    assert all(sorted(tracks) == list(range(1, len(tracks) + 1)) for tracks in albums.values()), albums
    assert len(albums) < len(files)  # the takes of a song idea share an album
