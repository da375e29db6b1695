"""Tags on archived files, written through `archiver sync` against the simulator."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from mutagen.id3 import ID3
from mutagen.mp4 import MP4

from archiver.tagging import read_tags
from conftest import sync_now as sync

SOURCES = ["ccapi-suno", "ccapi-producer", "mountsea", "acedata", "aimusicapi"]




def audio_rows(library: Path) -> list[dict]:
    con = sqlite3.connect(library / "archiver.db")
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute(
        "select a.path, a.size, a.sha256, a.warning, a.tagged, c.*, t.task_id as task "
        "from assets a join clips c on c.id = a.clip_pk join tasks t on t.id = c.task_pk "
        "where a.kind = 'audio' and a.state = 'downloaded' order by c.id")]
    con.close()
    return rows


def test_every_archived_file_of_every_source_is_tagged(sim, sim_cli, library: Path) -> None:
    for source in SOURCES:
        task = sim.add_task(source, steps=0, titles=[f"Ünïcødé 🎵 {source}", "曲 שיר"],
                            lyrics="[Verse]\nline one\nline two — ✓\n\n[Chorus]\nla la")
        assert sim_cli("add", source, task).exit_code == 0
    code, summary = sync(sim_cli)
    assert code == 0, summary
    rows = audio_rows(library)
    assert {r["source"] for r in rows} == set(SOURCES)
    for row in rows:
        path = library / row["path"]
        tags = read_tags(path)
        assert row["tagged"] == 1
        assert tags["title"] == row["title"]
        if row["source"] == "mountsea":  # its result is {audioId, audioUrl, duration, title}: no lyrics
            assert tags["lyrics"] is None and row["lyrics"] is None
            continue
        assert tags["lyrics"] == row["lyrics"] == "[Verse]\nline one\nline two — ✓\n\n[Chorus]\nla la"
        assert tags["duration"] == pytest.approx(row["duration"], abs=0.01)
        assert (tags["source"], tags["task_id"], tags["clip_id"]) == (row["source"], row["task"], row["clip_id"])
        assert tags["source_url"] == row["audio_url"]
        if row["source"] != "mountsea":  # mountsea results carry no cover
            assert tags["has_cover"] and tags["cover_mime"] == "image/jpeg"
        if path.suffix == ".mp3":
            assert ID3(path).version == (2, 3, 0)
            assert ID3(path).getall("USLT")[0].text == row["lyrics"]
            assert int(ID3(path)["TLEN"].text[0]) == round(row["duration"] * 1000)
        else:
            assert MP4(path)["©lyr"] == [row["lyrics"]]


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe not installed")
def test_ffprobe_sees_title_lyrics_and_cover(sim, sim_cli, library: Path) -> None:
    for source in ("ccapi-suno", "acedata"):  # one mp3, one m4a
        sim_cli("add", source, sim.add_task(source, clips=1, steps=0, lyrics="hello\nworld"))
    sync(sim_cli)
    for row in audio_rows(library):
        out = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json",
                              str(library / row["path"])], capture_output=True, text=True, check=True)
        info = json.loads(out.stdout)
        tags = {k.lower(): v for k, v in info["format"].get("tags", {}).items()}
        assert tags["title"] == row["title"]
        assert any(k.startswith("lyrics") and v == "hello\nworld" for k, v in tags.items())
        assert any(s.get("disposition", {}).get("attached_pic") == 1 for s in info["streams"])


def test_duration_mismatch_refetches_then_keeps_with_warning(sim, sim_cli, library: Path) -> None:
    task = sim.add_task("mountsea", steps=0, duration_lie=60.0)  # the file is ~4 s
    sim_cli("add", "mountsea", task)
    code, summary = sync(sim_cli)
    assert code == 0, summary
    (row,) = audio_rows(library)
    assert "kept" in row["warning"] and "60.0" in row["warning"]
    media = [r for r in sim.requests if r.target == "media"]
    assert len(media) == 2  # fetched a second time before being kept


def test_truncated_audio_without_length_is_fetched_again(sim, sim_cli, library: Path) -> None:
    task = sim.add_task("mountsea", steps=0, audio_bytes=400_000)
    sim_cli("add", "mountsea", task)
    sync(sim_cli, "--no-download")
    clip_id = sqlite3.connect(library / "archiver.db").execute("select clip_id from clips").fetchone()[0]
    sim.inject("no_length", clip_id=clip_id)
    code, summary = sync(sim_cli)
    assert code == 0, summary
    (row,) = audio_rows(library)
    assert row["warning"] is None
    served = sim.media_bytes(row["audio_url"])
    assert row["size"] >= len(served)  # the whole file, plus tags


def test_lyrics_sidecar_is_plain_text(sim, sim_cli, library: Path) -> None:
    sim_cli("add", "acedata", sim.add_task("acedata", clips=1, steps=0, lyrics="[Verse]\nsing\nalong"))
    sync(sim_cli, extra_config="lyrics_sidecar = true\n")
    (row,) = audio_rows(library)
    audio = library / row["path"]
    assert audio.with_suffix(".txt").read_text(encoding="utf-8") == "[Verse]\nsing\nalong\n"
    assert not audio.with_suffix(".lrc").exists()  # no timings, so not LRC
    assert sim_cli("verify").exit_code == 0  # a sidecar is not an orphan


@pytest.mark.parametrize("sidecar", ["true", "false"])
def test_retag_migrates_old_lrc_sidecars(sim, sim_cli, library: Path, sidecar: str) -> None:
    sim_cli("add", "acedata", sim.add_task("acedata", clips=2, steps=0, lyrics="sing\nalong"))
    sync(sim_cli)
    ours, real = (library / r["path"] for r in audio_rows(library))
    ours.with_suffix(".lrc").write_text("sing\nalong\n", encoding="utf-8")  # what earlier versions wrote
    real.with_suffix(".lrc").write_text("[00:01.00]sing\n[00:02.50]along\n", encoding="utf-8")  # a user's LRC
    assert sim_cli("retag", extra_config=f"lyrics_sidecar = {sidecar}\n").exit_code == 0
    assert not ours.with_suffix(".lrc").exists()
    assert ours.with_suffix(".txt").read_text(encoding="utf-8") == "sing\nalong\n"
    assert real.with_suffix(".lrc").read_text(encoding="utf-8").startswith("[00:01.00]")  # left alone
    assert real.with_suffix(".txt").exists() == (sidecar == "true")
    assert sim_cli("verify").exit_code == 0


def test_retag_is_idempotent_and_follows_config(sim, sim_cli, library: Path) -> None:
    for source in ("ccapi-suno", "aimusicapi"):
        sim_cli("add", source, sim.add_task(source, steps=0))
    sync(sim_cli)
    before = {r["path"]: r["sha256"] for r in audio_rows(library)}
    first = sim_cli("retag")
    assert first.exit_code == 0 and "retagged 0 file(s), 4 already up to date" in first.output
    changed = sim_cli("retag", extra_config='artist = "The Machines"\nid3_version = 4\n')
    assert changed.exit_code == 0 and "retagged 4 file(s)" in changed.output
    rows = audio_rows(library)
    for row in rows:
        path = library / row["path"]
        assert read_tags(path)["artist"] == "The Machines"
        assert row["sha256"] != before[row["path"]]
        if path.suffix == ".mp3":
            assert ID3(path).version == (2, 4, 0)
    again = sim_cli("retag", extra_config='artist = "The Machines"\nid3_version = 4\n')
    assert "retagged 0 file(s), 4 already up to date" in again.output
    assert sim_cli("verify").exit_code == 0  # sizes and hashes in the DB follow the files


def test_retag_query_limits_files(sim, sim_cli, library: Path) -> None:
    for source in ("ccapi-suno", "acedata"):
        sim_cli("add", source, sim.add_task(source, steps=0))
    sync(sim_cli)
    result = sim_cli("retag", "source:acedata", extra_config='album = "Only Ace"\n')
    assert "retagged 2 file(s)" in result.output
    albums = {r["source"]: read_tags(library / r["path"])["album"] for r in audio_rows(library)}
    assert albums["acedata"] == "Only Ace" and albums["ccapi-suno"] != "Only Ace"


@pytest.mark.parametrize("name", ["sample.mp3", "sample.m4a"])
def test_audio_length_is_not_fooled_by_headers_of_a_cut_file(tmp_path: Path, name: str) -> None:
    from archiver.audiolength import audio_length

    source = Path(__file__).parents[1] / "archiver" / "data" / "media" / name
    whole = audio_length(source)
    assert whole and whole > 3.5
    cut = tmp_path / name
    data = source.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert (audio_length(cut) or 0.0) < whole * 0.75


@pytest.mark.parametrize("fmt", ["flac", "opus", "wav"])
def test_other_formats_a_provider_serves_are_tagged(sim, sim_cli, library: Path, fmt: str) -> None:
    sim_cli("add", "aimusicapi", sim.add_task("aimusicapi", clips=1, steps=0, audio_format=fmt, lyrics="one\ntwo"))
    code, summary = sync(sim_cli)
    assert code == 0, summary
    (row,) = audio_rows(library)
    assert row["path"].endswith("." + fmt) and row["tagged"] == 1
    tags = read_tags(library / row["path"])
    assert tags["format"] == fmt and tags["title"] == row["title"] and tags["clip_id"] == row["clip_id"]
    assert tags["lyrics"] == "one\ntwo" and tags["has_cover"]
