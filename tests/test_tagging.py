"""Tagging against the real shipped media fixtures, checked through mutagen and ffprobe."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import random
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutagen.flac import FLAC, Picture
from mutagen.id3 import APIC, COMM, ID3, TSOP, TXXX, USLT, Encoding, ID3NoHeaderError
from mutagen.mp4 import MP4, MP4Cover
from mutagen.oggopus import OggOpus
from mutagen.wave import WAVE

from archiver.audiolength import audio_length
from archiver.errors import TaggingError
from archiver.tagging import (
    FIELDS,
    TagData,
    TagOutcome,
    detect_format,
    read_tags,
    tag_file,
)

MEDIA = Path(__file__).resolve().parents[1] / "archiver" / "data" / "media"
SAMPLES = {
    "mp3": "sample.mp3",
    "m4a": "sample.m4a",
    "flac": "sample.flac",
    "opus": "sample.opus",
    "wav": "sample.wav",
}
ALL_FORMATS = list(SAMPLES)
UNICODE_TITLE = "Ünïcødé 🎵 曲 שיר"
LYRICS = "[Verse 1]\nFirst line — ünïcødé\r\nSecond line 歌詞\n\n[Chorus]\nשיר שיר 🎶\n"
COVER_JPG = (MEDIA / "cover.jpg").read_bytes()
COVER_PNG = (MEDIA / "cover.png").read_bytes()
PROVENANCE = {
    "ARCHIVER_SOURCE": "sunoapi",
    "ARCHIVER_TASK_ID": "task-0001",
    "ARCHIVER_CLIP_ID": "clip-abc",
    "ARCHIVER_MODEL": "chirp-v4",
    "ARCHIVER_SEED": "123456789",
    "ARCHIVER_SOURCE_URL": "https://cdn.example.com/clip-abc.mp3?sig=x&y=1",
}
FULL = TagData(
    title=UNICODE_TITLE,
    artist="Archiver Artist",
    album="Archive Album",
    albumartist="archiver",
    track=(2, 3),
    disc=(1, 1),
    date="2026-03-13",
    genre="Synthwave",
    comment="generated with a prompt: neon night",
    lyrics=LYRICS,
    duration=187.24,
    source=PROVENANCE["ARCHIVER_SOURCE"],
    task_id=PROVENANCE["ARCHIVER_TASK_ID"],
    clip_id=PROVENANCE["ARCHIVER_CLIP_ID"],
    model=PROVENANCE["ARCHIVER_MODEL"],
    seed=PROVENANCE["ARCHIVER_SEED"],
    source_url=PROVENANCE["ARCHIVER_SOURCE_URL"],
    cover=COVER_JPG,
)
TEXT_FIELDS = [f.name for f in FIELDS if f.name != "duration"]


@pytest.fixture
def copy_sample(tmp_path: Path) -> Callable[..., Path]:
    """Copy a shipped fixture under a `.part` name, as the downloader would hand it over."""

    def _copy(fmt_or_name: str, name: str | None = None) -> Path:
        src = MEDIA / SAMPLES.get(fmt_or_name, fmt_or_name)
        dst = tmp_path / (name or f"{src.name}.part")
        shutil.copyfile(src, dst)
        return dst

    return _copy


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def decoded_audio_hash(path: Path) -> str:
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a", "-f", "s16le", "-"],
        check=True,
        capture_output=True,
    ).stdout
    assert len(out) > 1000, "ffmpeg decoded (almost) nothing"
    return hashlib.sha256(out).hexdigest()


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        check=True,
        capture_output=True,
    ).stdout
    return json.loads(out)


def assert_full_read_back(tags: dict[str, Any], fmt: str, cover_mime: str = "image/jpeg") -> None:
    assert tags["format"] == fmt
    for name in TEXT_FIELDS:
        assert tags[name] == getattr(FULL, name), name
    assert tags["duration"] == pytest.approx(187.24, abs=1e-6)
    assert tags["has_cover"] is True
    assert tags["cover_mime"] == cover_mime


# --- fixtures and the table ------------------------------------------------------------------


def test_fixtures_are_real_and_small() -> None:
    names = [*SAMPLES.values(), "cover.jpg", "cover.png"]
    total = sum((MEDIA / n).stat().st_size for n in names)
    assert total < 300_000
    assert (MEDIA / "sample.mp3").stat().st_size < 100_000
    assert COVER_JPG.startswith(b"\xff\xd8\xff") and COVER_PNG.startswith(b"\x89PNG")
    assert "TSSE" in ID3(MEDIA / "sample.mp3")
    assert (MEDIA / "README.md").read_text().count("ffmpeg ") >= 7


def test_table_covers_every_tagdata_field() -> None:
    names = [f.name for f in FIELDS]
    assert len(names) == len(set(names))
    data_fields = {f.name for f in dataclasses.fields(TagData)} - {"cover", "cover_mime"}
    assert set(names) == data_fields
    for column in ("id3", "mp4", "vorbis"):
        keys = [getattr(f, column) for f in FIELDS]
        assert len(keys) == len(set(keys)), column


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_detect_format_ignores_the_file_name(fmt: str, copy_sample: Callable[..., Path]) -> None:
    misleading = copy_sample(fmt, "song.jpg" if fmt != "flac" else "song.mp3")
    assert detect_format(misleading) == fmt
    assert tag_file(misleading, TagData(title="x")) == TagOutcome(fmt, True, None)
    assert read_tags(misleading)["title"] == "x"


def test_audio_length(copy_sample: Callable[..., Path], tmp_path: Path) -> None:
    expected = {"mp3": 4.05, "m4a": 4.02, "flac": 2.0, "opus": 4.0, "wav": 1.0}
    for fmt, seconds in expected.items():
        assert audio_length(copy_sample(fmt)) == pytest.approx(seconds, abs=0.05)
    text = tmp_path / "notes.txt"
    text.write_text("not audio")
    assert audio_length(text) is None
    assert audio_length(tmp_path / "missing.mp3") is None


# --- every format: write everything, read it back ----------------------------------------------


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_all_fields_round_trip(fmt: str, copy_sample: Callable[..., Path]) -> None:
    path = copy_sample(fmt)
    assert read_tags(path)["title"] is None
    outcome = tag_file(path, FULL)
    assert outcome == TagOutcome(fmt, True, None)
    assert_full_read_back(read_tags(path), fmt)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_png_cover_keeps_its_mime(fmt: str, copy_sample: Callable[..., Path]) -> None:
    path = copy_sample(fmt)
    tag_file(path, dataclasses.replace(FULL, cover=COVER_PNG, cover_mime="image/png"))
    assert_full_read_back(read_tags(path), fmt, cover_mime="image/png")


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_retag_is_idempotent(fmt: str, copy_sample: Callable[..., Path]) -> None:
    path = copy_sample(fmt)
    tag_file(path, FULL)
    first = sha256(path)
    tag_file(path, FULL)
    assert sha256(path) == first
    tag_file(path, FULL, id3_version=3)
    assert sha256(path) == first


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_retag_replaces_values(fmt: str, copy_sample: Callable[..., Path]) -> None:
    path = copy_sample(fmt)
    tag_file(path, FULL)
    newer = TagData(
        title="Second", lyrics="new lyrics", comment="new comment", seed="7", cover=COVER_PNG
    )
    tag_file(path, newer)
    tags = read_tags(path)
    assert (tags["title"], tags["lyrics"], tags["comment"], tags["seed"]) == (
        "Second",
        "new lyrics",
        "new comment",
        "7",
    )
    assert tags["cover_mime"] == "image/png"
    # Fields that were None in the second TagData keep their earlier values.
    assert tags["artist"] == FULL.artist
    assert tags["task_id"] == FULL.task_id
    assert tags["duration"] == pytest.approx(187.24)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_decoded_audio_is_unchanged(fmt: str, copy_sample: Callable[..., Path]) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    path = copy_sample(fmt)
    before = decoded_audio_hash(path)
    tag_file(path, FULL)
    assert decoded_audio_hash(path) == before


@pytest.mark.parametrize("fmt", ["mp3", "m4a", "flac", "opus"])
def test_ffprobe_sees_title_lyrics_and_cover(fmt: str, copy_sample: Callable[..., Path]) -> None:
    if shutil.which("ffprobe") is None:
        pytest.skip("ffprobe not installed")
    path = copy_sample(fmt)
    tag_file(path, FULL)
    probe = ffprobe(path)
    audio = next(s for s in probe["streams"] if s["codec_type"] == "audio")
    # Ogg puts comments on the stream, other containers on the format.
    tags = {**probe["format"].get("tags", {}), **audio.get("tags", {})}
    lowered = {k.lower(): v for k, v in tags.items()}
    assert lowered["title"] == UNICODE_TITLE
    # ffprobe prints USLT as "lyrics-XXX" (unknown language), ©lyr as "lyrics", Vorbis as "LYRICS".
    lyric_keys = {"mp3": "lyrics-XXX", "m4a": "lyrics", "flac": "LYRICS", "opus": "LYRICS"}
    assert tags[lyric_keys[fmt]] == LYRICS
    pictures = [s for s in probe["streams"] if s["disposition"].get("attached_pic") == 1]
    assert len(pictures) == 1
    assert pictures[0]["codec_name"] == "mjpeg"


# --- format-specific raw checks ------------------------------------------------------------------


def test_mp3_raw_frames_id3v23(copy_sample: Callable[..., Path]) -> None:
    path = copy_sample("mp3")
    assert ID3(path).version == (2, 4, 0)  # ffmpeg writes v2.4; we save v2.3 by default
    tag_file(path, FULL)
    tag_file(path, FULL)
    id3 = ID3(path)
    assert id3.version == (2, 3, 0)
    assert b"TYER" in path.read_bytes()  # v2.3 has no TDRC on disk
    assert id3["TIT2"].text == [UNICODE_TITLE]
    assert id3["TIT2"].encoding == Encoding.UTF16
    assert id3["TPE1"].text == ["Archiver Artist"]
    assert str(id3["TDRC"].text[0]) == "2026-03-13"
    assert id3["TLEN"].text == ["187240"]
    assert str(id3["TSSE"].text[0]).startswith("Lavf")
    uslt = id3.getall("USLT")
    assert len(uslt) == 1
    assert (uslt[0].text, uslt[0].lang, uslt[0].desc) == (LYRICS, "XXX", "")
    comm = id3.getall("COMM")
    assert len(comm) == 1
    assert (comm[0].text, comm[0].lang, comm[0].desc) == ([FULL.comment], "XXX", "")
    assert (id3["TPE2"].text, id3["TRCK"].text, id3["TPOS"].text) == (["archiver"], ["2/3"], ["1/1"])
    apic = id3.getall("APIC")
    assert len(apic) == 1
    assert (apic[0].type, apic[0].mime, apic[0].data) == (3, "image/jpeg", COVER_JPG)
    txxx = {f.desc: f.text for f in id3.getall("TXXX")}
    assert txxx == {desc: [value] for desc, value in PROVENANCE.items()}


def test_mp3_replaces_foreign_frames_and_keeps_unrelated_ones(
    copy_sample: Callable[..., Path],
) -> None:
    path = copy_sample("mp3")
    id3 = ID3(path)
    id3.add(USLT(encoding=3, lang="eng", desc="", text="old lyrics"))
    id3.add(COMM(encoding=3, lang="und", desc="", text=["old comment"]))
    id3.add(COMM(encoding=3, lang="eng", desc="iTunNORM", text=[" 0000"]))
    id3.add(APIC(encoding=3, mime="image/png", type=3, desc="old front", data=COVER_PNG))
    id3.add(APIC(encoding=3, mime="image/png", type=4, desc="back", data=COVER_PNG))
    id3.add(TXXX(encoding=3, desc="OTHER_TOOL", text=["keep me"]))
    id3.add(TSOP(encoding=3, text=["Artist, The"]))
    id3.save(path)
    tag_file(path, FULL)
    id3 = ID3(path)
    assert [(f.lang, f.text) for f in id3.getall("USLT")] == [("XXX", LYRICS)]
    comments = {(f.desc, f.lang): f.text for f in id3.getall("COMM")}
    assert comments == {("", "XXX"): [FULL.comment], ("iTunNORM", "eng"): [" 0000"]}
    pictures = sorted((f.type, f.desc, f.mime) for f in id3.getall("APIC"))
    assert pictures == [(3, "", "image/jpeg"), (4, "back", "image/png")]
    assert id3["TXXX:OTHER_TOOL"].text == ["keep me"]
    assert id3["TSOP"].text == ["Artist, The"]
    assert read_tags(path)["comment"] == FULL.comment


def test_mp3_id3v24_on_request(copy_sample: Callable[..., Path]) -> None:
    path = copy_sample("mp3")
    tag_file(path, dataclasses.replace(FULL, cover=COVER_PNG), id3_version=4)
    id3 = ID3(path)
    assert id3.version == (2, 4, 0)
    assert id3["TIT2"].encoding == Encoding.UTF8
    assert id3["TIT2"].text == [UNICODE_TITLE]
    assert id3.getall("USLT")[0].text == LYRICS
    assert id3.getall("APIC")[0].mime == "image/png"
    assert_full_read_back(read_tags(path), "mp3", cover_mime="image/png")
    # Switching back to v2.3 converts the existing tag.
    tag_file(path, FULL)
    assert ID3(path).version == (2, 3, 0)
    assert_full_read_back(read_tags(path), "mp3")


def test_mp3_without_id3_header_gets_one(copy_sample: Callable[..., Path]) -> None:
    path = copy_sample("mp3")
    raw = path.read_bytes()
    size = 0
    for b in raw[6:10]:
        size = (size << 7) | b
    path.write_bytes(raw[10 + size :])
    with pytest.raises(ID3NoHeaderError):
        ID3(path)
    assert detect_format(path) == "mp3"
    assert tag_file(path, FULL).tagged
    assert ID3(path).version == (2, 3, 0)
    assert_full_read_back(read_tags(path), "mp3")


def test_wav_gets_an_id3_chunk(copy_sample: Callable[..., Path]) -> None:
    path = copy_sample("wav")
    assert WAVE(path).tags is None
    tag_file(path, FULL)
    tags = WAVE(path).tags
    assert tags is not None and tags.version == (2, 3, 0)
    assert tags["TIT2"].text == [UNICODE_TITLE]
    assert tags.getall("USLT")[0].text == LYRICS
    assert tags["TLEN"].text == ["187240"]
    assert tags.getall("APIC")[0].type == 3


def test_m4a_raw_atoms(copy_sample: Callable[..., Path]) -> None:
    path = copy_sample("m4a")
    tag_file(path, FULL)
    tags = MP4(path).tags
    assert tags is not None
    assert tags["©nam"] == [UNICODE_TITLE]
    assert tags["©lyr"] == [LYRICS]
    assert tags["©cmt"] == [FULL.comment]
    assert tags["©day"] == ["2026-03-13"]
    assert tags["©too"][0].startswith("Lavf")
    assert (tags["aART"], tags["trkn"], tags["disk"]) == (["archiver"], [(2, 3)], [(1, 1)])
    assert bytes(tags["----:com.archiver:ARCHIVER_DURATION"][0]) == b"187.24"
    for desc, value in PROVENANCE.items():  # the same prefixed names as in ID3 and Vorbis
        assert bytes(tags["----:com.archiver:" + desc][0]).decode("utf-8") == value
    assert not [key for key in tags if key.startswith("----:com.archiver:") and "ARCHIVER_" not in key]
    assert len(tags["covr"]) == 1
    assert tags["covr"][0].imageformat == MP4Cover.FORMAT_JPEG
    assert bytes(tags["covr"][0]) == COVER_JPG
    tag_file(path, TagData(cover=COVER_PNG))
    covr = MP4(path)["covr"]
    assert len(covr) == 1 and covr[0].imageformat == MP4Cover.FORMAT_PNG


def _back_cover() -> Picture:
    pic = Picture()
    pic.type, pic.mime, pic.desc, pic.data = 4, "image/png", "back", COVER_PNG
    return pic


def test_flac_raw_blocks(copy_sample: Callable[..., Path]) -> None:
    path = copy_sample("flac")
    flac = FLAC(path)
    flac.add_picture(_back_cover())
    flac.save()
    tag_file(path, FULL)
    tag_file(path, FULL)
    flac = FLAC(path)
    assert flac["TITLE"] == [UNICODE_TITLE]
    assert flac["LYRICS"] == [LYRICS]
    assert flac["ARCHIVER_DURATION"] == ["187.24"]
    assert flac["ALBUMARTIST"] == ["archiver"]
    assert (flac["TRACKNUMBER"], flac["TRACKTOTAL"]) == (["2"], ["3"])
    assert (flac["DISCNUMBER"], flac["DISCTOTAL"]) == (["1"], ["1"])
    assert flac["ENCODER"][0].startswith("Lavf")
    for key, value in PROVENANCE.items():
        assert flac[key] == [value]
    assert sorted(p.type for p in flac.pictures) == [3, 4]
    pic = next(p for p in flac.pictures if p.type == 3)
    assert (pic.type, pic.mime, pic.width, pic.height, pic.data) == (
        3,
        "image/jpeg",
        64,
        64,
        COVER_JPG,
    )


def test_opus_metadata_block_picture(copy_sample: Callable[..., Path]) -> None:
    path = copy_sample("opus")
    opus = OggOpus(path)
    opus["METADATA_BLOCK_PICTURE"] = [base64.b64encode(_back_cover().write()).decode("ascii")]
    opus.save()
    tag_file(path, FULL)
    tag_file(path, dataclasses.replace(FULL, cover=COVER_PNG))
    opus = OggOpus(path)
    assert opus["TITLE"] == [UNICODE_TITLE]
    assert opus["LYRICS"] == [LYRICS]
    assert opus["ENCODER"][0].startswith("Lavc")
    blocks = [Picture(base64.b64decode(b)) for b in opus["METADATA_BLOCK_PICTURE"]]
    assert [p.type for p in blocks] == [3, 4]  # ours first, the back cover kept
    pic = blocks[0]
    assert (pic.type, pic.mime, pic.width, pic.height, pic.data) == (
        3,
        "image/png",
        64,
        64,
        COVER_PNG,
    )


# --- odd inputs --------------------------------------------------------------------------------


def test_date_year_only_and_bad_values_warn(copy_sample: Callable[..., Path]) -> None:
    path = copy_sample("mp3")
    assert tag_file(path, TagData(date="2026")).warning is None
    assert read_tags(path)["date"] == "2026"
    outcome = tag_file(path, TagData(title="t", date="sometime", duration=float("nan")))
    assert outcome.tagged and outcome.warning is not None
    assert "date" in outcome.warning and "duration" in outcome.warning
    tags = read_tags(path)
    assert (tags["title"], tags["date"], tags["duration"]) == ("t", "2026", None)


def test_unknown_cover_bytes_warn_but_tag(copy_sample: Callable[..., Path]) -> None:
    path = copy_sample("m4a")
    outcome = tag_file(path, TagData(title="t", cover=b"definitely not an image"))
    assert outcome.tagged and outcome.warning and "cover" in outcome.warning
    assert read_tags(path)["has_cover"] is False
    gif = b"GIF89a" + bytes(20)
    outcome = tag_file(path, TagData(cover=gif))
    assert outcome.tagged and outcome.warning and "image/gif" in outcome.warning


@pytest.mark.parametrize(
    "content",
    [COVER_JPG, b"just some text\n" * 20, b"", b"OggS" + bytes(60)],
    ids=["jpeg", "text", "empty", "ogg-unknown-codec"],
)
def test_unsupported_file_is_left_untagged(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "thing.mp3.part"
    path.write_bytes(content)
    outcome = tag_file(path, FULL)
    assert outcome.format is None and outcome.tagged is False
    assert outcome.warning and str(path) in outcome.warning
    assert path.read_bytes() == content
    assert read_tags(path)["format"] is None


def _corrupt_variants() -> dict[str, bytes]:
    rng = random.Random(1234)
    noise = bytes(rng.randrange(256) for _ in range(3000))
    real = (MEDIA / "sample.mp3").read_bytes()
    return {
        "id3-header-then-noise": b"ID3\x03\x00\x00\x00\x00\x20\x00" + noise,
        "id3-size-beyond-eof": b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f" + noise[:100],
        "truncated-real-mp3": real[:60],
        "frame-sync-then-noise": b"\xff\xfb\x90\x00" + noise[:40],
    }


@pytest.mark.parametrize("name", list(_corrupt_variants()))
def test_corrupt_mp3_raises_tagging_error_or_skips(tmp_path: Path, name: str) -> None:
    path = tmp_path / "broken.mp3.part"
    path.write_bytes(_corrupt_variants()[name])
    for call in (lambda: tag_file(path, FULL), lambda: read_tags(path)):
        try:
            result = call()
        except TaggingError as exc:
            assert str(path) in str(exc)
        else:
            tagged = result.tagged if isinstance(result, TagOutcome) else result["format"]
            assert not tagged


def test_missing_file_raises_tagging_error(tmp_path: Path) -> None:
    with pytest.raises(TaggingError, match="missing.mp3"):
        tag_file(tmp_path / "missing.mp3", FULL)


# --- property-based round trip -------------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=200,
)


@pytest.mark.parametrize("fmt", ["mp3", "m4a"])
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(title=_TEXT, lyrics=_TEXT)
def test_arbitrary_text_round_trips(
    fmt: str, title: str, lyrics: str, copy_sample: Callable[..., Path]
) -> None:
    path = copy_sample(fmt)  # overwritten with a fresh copy for every example
    assert tag_file(path, TagData(title=title, lyrics=lyrics)).tagged
    tags = read_tags(path)
    # Empty strings are never written, so they read back as "absent".
    assert tags["title"] == (title or None)
    assert tags["lyrics"] == (lyrics or None)


# --- independent readers -------------------------------------------------------------------------

READER_CASES = [("mp3", 3), ("mp3", 4), ("m4a", 3), ("flac", 3)]


@pytest.mark.parametrize(("fmt", "id3_version"), READER_CASES)
def test_mediafile_reads_every_field(fmt: str, id3_version: int, copy_sample: Callable[..., Path]) -> None:
    mediafile = pytest.importorskip("mediafile")
    path = copy_sample(fmt, f"song.{fmt}")  # mediafile picks its parser by the file name
    tag_file(path, FULL, id3_version=id3_version)
    mf = mediafile.MediaFile(str(path))
    assert (mf.title, mf.artist, mf.albumartist, mf.album) == (
        UNICODE_TITLE, "Archiver Artist", "archiver", "Archive Album")
    assert (mf.track, mf.tracktotal, mf.disc, mf.disctotal) == (2, 3, 1, 1)
    assert (mf.year, mf.month, mf.day) == (2026, 3, 13)
    assert mf.genre == "Synthwave"
    assert mf.lyrics == LYRICS
    assert mf.comments == FULL.comment
    assert [(img.mime_type, img.data) for img in mf.images] == [("image/jpeg", COVER_JPG)]
    assert mf.length == pytest.approx(audio_length(path), abs=0.1)


@pytest.mark.parametrize(("fmt", "id3_version"), READER_CASES)
def test_ffprobe_reads_every_field(fmt: str, id3_version: int, copy_sample: Callable[..., Path]) -> None:
    if shutil.which("ffprobe") is None:
        pytest.skip("ffprobe not installed")
    path = copy_sample(fmt)
    tag_file(path, FULL, id3_version=id3_version)
    probe = ffprobe(path)
    tags = {k.lower(): v for k, v in probe["format"].get("tags", {}).items()}
    assert (tags["title"], tags["artist"], tags["album"]) == (UNICODE_TITLE, "Archiver Artist", "Archive Album")
    assert tags.get("album_artist", tags.get("albumartist")) == "archiver"
    if fmt == "flac":  # ffmpeg shows Vorbis comments as they are: number and total apart
        assert (tags["track"], tags["tracktotal"], tags["disc"], tags["disctotal"]) == ("2", "3", "1", "1")
    else:
        assert (tags["track"], tags["disc"]) == ("2/3", "1/1")
    assert tags["date"].startswith("2026")
    assert tags["genre"] == "Synthwave"
    assert next(v for k, v in tags.items() if k.startswith("lyrics")) == LYRICS
    assert [s for s in probe["streams"] if s["disposition"].get("attached_pic") == 1]
    assert float(probe["format"]["duration"]) == pytest.approx(audio_length(path), abs=0.1)


def test_m4a_names_of_earlier_versions_are_still_read_and_replaced(copy_sample: Callable[..., Path]) -> None:
    from mutagen.mp4 import AtomDataType, MP4FreeForm

    path = copy_sample("m4a")
    mp4 = MP4(path)
    for key, value in {"SOURCE": "acedata", "TASK_ID": "t-1", "CLIP_ID": "c-1", "DURATION": "4.5"}.items():
        mp4[f"----:com.archiver:{key}"] = [MP4FreeForm(value.encode(), dataformat=AtomDataType.UTF8)]
    mp4.save()
    tags = read_tags(path)
    assert (tags["source"], tags["task_id"], tags["clip_id"], tags["duration"]) == ("acedata", "t-1", "c-1", 4.5)
    tag_file(path, dataclasses.replace(FULL, duration=4.5))
    names = [k for k in MP4(path) if k.startswith("----:")]
    assert sorted(names) == sorted(f"----:com.archiver:ARCHIVER_{k}" for k in
                                   ("SOURCE", "TASK_ID", "CLIP_ID", "MODEL", "SEED", "SOURCE_URL", "DURATION"))


@pytest.mark.parametrize("bad", [(0, 3), (4, 3), ("x", 3), (1, "y"), (1,)])
def test_bad_track_positions_warn_and_are_not_written(bad: Any, copy_sample: Callable[..., Path]) -> None:
    path = copy_sample("flac")
    outcome = tag_file(path, TagData(title="t", track=bad))
    assert outcome.warning and "position" in outcome.warning
    assert read_tags(path)["track"] is None and read_tags(path)["title"] == "t"
