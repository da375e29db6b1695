"""An MP3's tags written before its audio (the prelude) give the file tagging in place gives.

The downloader builds the tags from the source's own ID3 tag as the first bytes arrive, hashes
the finished file as it streams, and writes it once: tags, then everything after the source's tag.
These tests hold that to `tag_file` on the same bytes, frame by frame, and check the hash and the
cases left to `tag_file` (an ID3v1 tail, a second tag, a FLAC behind an ID3 tag).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutagen.id3 import ID3, TXXX, USLT, Frame

from archiver.audiolength import audio_length
from archiver.download import Fetched
from archiver.errors import TaggingError
from archiver.finishing import Prelude, finish_prelude
from archiver.media import id3_extent
from archiver.tagging import TagData, id3_prelude, read_tags, tag_file

from test_tagging import COVER_JPG, FULL, MEDIA, decoded_audio_hash


def _extent(data: bytes) -> int:
    extent = id3_extent(data[:10])
    assert extent is not None
    return extent


def _frames(path: Path) -> list[tuple[str, str]]:
    """Every frame as (key, its repr), in a stable order: what a player or beets would read."""
    tags = ID3(path)
    return sorted((key, repr(frame)) for key, frame in tags.items())


def _payload(path: Path) -> bytes:
    data = path.read_bytes()
    return data[_extent(data):]


def _by_prelude(source: bytes, tmp: Path, data: TagData, cover: Path | None = None,
                id3_version: int = 3, block: int = 4096) -> tuple[Path, Fetched] | None:
    """What the downloader does: the prelude from the first bytes, the hash as the bytes come, one write."""
    part = tmp / "song.mp3.part"
    part.write_bytes(source)
    extent = _extent(source)
    prelude = Prelude(data, cover, id3_version)
    built = prelude(source[:extent + 16], extent, block)
    if built is None:
        return None
    grow = len(built) - extent
    assert grow < 0 or grow % block == 0 if block else True  # whole blocks fs.graft can insert, or a copy
    digest = hashlib.sha256(built)
    for start in range(extent, len(source), 7919):  # body pieces of an odd size, as they arrive
        digest.update(source[start:start + 7919])
    fetched = Fetched(part, len(source), digest.hexdigest(), "mp3", prelude=built, skip=extent)
    tagging = tmp / "song.tagging"
    done = finish_prelude(part, tagging, fetched, prelude)
    if done is None:
        return None
    assert done.size == tagging.stat().st_size and done.sha256 == hashlib.sha256(tagging.read_bytes()).hexdigest()
    assert not part.exists()
    return tagging, fetched


def _seeded(tmp: Path, *frames: Frame) -> bytes:
    """The shipped MP3 with these frames added to its tag, as another tool (or a provider) left it."""
    tags = ID3(MEDIA / "sample.mp3")
    for frame in frames:
        tags.add(frame)
    seeded = tmp / "seeded.mp3"
    shutil.copyfile(MEDIA / "sample.mp3", seeded)
    tags.save(seeded)
    return seeded.read_bytes()


def _in_place(source: bytes, tmp: Path, data: TagData, id3_version: int = 3) -> Path:
    path = tmp / "in-place.mp3.part"
    path.write_bytes(source)
    tag_file(path, data, id3_version=id3_version)
    return path


@pytest.fixture
def source() -> bytes:
    """The shipped MP3 with a few frames of another tool, as a provider's file comes."""
    return (MEDIA / "sample.mp3").read_bytes()


@pytest.mark.parametrize("id3_version", [3, 4])
def test_prelude_file_has_the_frames_and_audio_of_tagging_in_place(tmp_path: Path, source: bytes,
                                                                  id3_version: int) -> None:
    raw = _seeded(tmp_path, USLT(encoding=3, lang="eng", desc="", text="the provider's lyrics"),
                  TXXX(encoding=3, desc="OTHER_TOOL", text=["keep me"]))
    got = _by_prelude(raw, tmp_path, FULL, id3_version=id3_version)
    assert got is not None
    ours, _fetched = got
    theirs = _in_place(raw, tmp_path, FULL, id3_version)
    assert _frames(ours) == _frames(theirs)
    assert ID3(ours).version == ID3(theirs).version == (2, id3_version, 0)
    assert _payload(ours) == _payload(theirs) == raw[_extent(raw):]
    assert read_tags(ours) == read_tags(theirs)
    assert audio_length(ours) == pytest.approx(audio_length(theirs))
    if shutil.which("ffmpeg"):
        assert decoded_audio_hash(ours) == decoded_audio_hash(theirs)


def test_a_source_without_a_tag_gets_one(tmp_path: Path, source: bytes) -> None:
    bare = source[_extent(source):]
    assert id3_extent(bare[:10]) == 0
    cover = tmp_path / "cover.jpg"
    cover.write_bytes(COVER_JPG)
    got = _by_prelude(bare, tmp_path, dataclasses.replace(FULL, cover=None), cover=cover)
    assert got is not None
    ours, _ = got
    assert _frames(ours) == _frames(_in_place(bare, tmp_path, FULL))
    assert read_tags(ours)["has_cover"]
    assert _payload(ours) == bare


def test_an_id3v1_tail_or_a_second_tag_is_left_to_tagging_in_place(tmp_path: Path, source: bytes) -> None:
    with_v1 = source + b"TAG" + b"old title".ljust(30, b"\0") + bytes(95)
    assert _by_prelude(with_v1, tmp_path, FULL) is None
    assert (tmp_path / "song.mp3.part").exists() and not (tmp_path / "song.tagging").exists()
    extent = _extent(source)
    twice = source[:extent] + source  # a second ID3 tag right after the first
    assert id3_prelude(twice[:extent + 16], extent, FULL) is None
    flac = (MEDIA / "sample.flac").read_bytes()
    behind_id3 = source[:extent] + flac
    assert id3_prelude(behind_id3[:extent + 16], extent, FULL) is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(min_size=0, max_size=600), version=st.sampled_from([b"\x02", b"\x03", b"\x04"]),
       flags=st.sampled_from([b"\x00", b"\x40", b"\x80", b"\x10"]))
def test_a_hostile_source_tag_gives_what_tagging_in_place_gives_or_no_prelude(
        tmp_path: Path, source: bytes, body: bytes, version: bytes, flags: bytes) -> None:
    """Garbage in the source's tag: the prelude is either declined (tag_file then judges the file,
    as before) or it agrees with tag_file frame for frame; it never differs and never raises."""
    size = len(body)
    header = b"ID3" + version + b"\x00" + flags + bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F,
                                                         (size >> 7) & 0x7F, size & 0x7F])
    raw = header + body + source[_extent(source):]
    folder = tmp_path / hashlib.sha256(raw[:size + 10]).hexdigest()[:16]
    folder.mkdir(exist_ok=True)
    got = _by_prelude(raw, folder, FULL)
    if got is None:
        return
    try:
        theirs = _in_place(raw, folder, FULL)
    except TaggingError:
        pytest.fail("a prelude was built for a file tag_file refuses")
    assert _frames(got[0]) == _frames(theirs)
    assert _payload(got[0]) == _payload(theirs)


def test_id3_extent_reads_the_header_or_waits_for_it() -> None:
    assert id3_extent(b"") is None and id3_extent(b"ID") is None and id3_extent(b"ID3\x04\0") is None
    assert id3_extent(b"\xff\xfb\x90\x00") == 0 and id3_extent(b"fLaC") == 0
    assert id3_extent(b"ID3\x04\x00\x00\x00\x00\x02\x01") == 10 + 257
    assert id3_extent(b"ID3\x04\x00\x10\x00\x00\x00\x05") == 10 + 5 + 10  # a footer follows
    assert id3_extent(b"ID3\x04\x00\x00\x80\x00\x00\x00") == 0  # not synchsafe: not a tag


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=st.text(max_size=300), lyrics=st.text(max_size=2000), seed=st.text(max_size=40))
def test_any_text_gives_the_same_tags_both_ways(tmp_path: Path, source: bytes, title: str, lyrics: str,
                                                seed: str) -> None:
    data = dataclasses.replace(FULL, title=title, lyrics=lyrics, seed=seed, cover=None)
    folder = tmp_path / hashlib.sha256(f"{title}{lyrics}{seed}".encode("utf-8", "surrogatepass")).hexdigest()[:16]
    folder.mkdir(exist_ok=True)
    theirs = _in_place(source, folder, data)
    got = _by_prelude(source, folder, data)
    assert got is not None
    assert _frames(got[0]) == _frames(theirs)
    assert read_tags(got[0]) == read_tags(theirs)


def test_a_sync_writes_each_mp3_once_tags_first(sim, sim_cli, library: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No MP3 the simulator serves is tagged in place (rewritten) after its download; each is
    written once, tags first, with the cover embedded and its recorded hash the file's own."""
    from test_download import add, check_archived

    import archiver.finishing as finishing
    from conftest import sync_now

    def rewrite(*args: object, **kwargs: object) -> None:
        raise AssertionError("an MP3 was tagged in place after its download")

    monkeypatch.setattr(finishing, "tag_file", rewrite)
    add(sim_cli, "ccapi-suno", sim.add_task("ccapi-suno", clips=2, steps=0, audio_bytes=200_000))
    code, summary = sync_now(sim_cli)
    assert code == 0 and summary["files_downloaded"] == 4, summary
    for row in check_archived(sim, library):
        if row["kind"] == "audio":
            tags = read_tags(library / row["path"])
            assert row["tagged"] and tags["clip_id"] == row["clip_id"] and tags["has_cover"]


@pytest.mark.parametrize("kernel", ["copy_file_range", "refuses", "absent"])
def test_write_joined_gives_the_same_file_with_or_without_copy_file_range(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel: str) -> None:
    """The tail is copied by the kernel where it can, through a buffer where it cannot (another OS,
    a file system that refuses): the same bytes either way, fsynced under a new name."""
    import errno
    import os

    from archiver import fs

    source = tmp_path / "body.part"
    body = os.urandom(3 * 1024 * 1024 + 77)
    source.write_bytes(body)
    if kernel == "refuses":
        def refuse(*args: object) -> int:
            raise OSError(errno.EXDEV, "cross-device")
        monkeypatch.setattr(os, "copy_file_range", refuse, raising=False)
    elif kernel == "absent":
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    target = tmp_path / "song.tagging"
    target.symlink_to(tmp_path / "elsewhere")  # a planted link is replaced, never written through
    size = fs.write_joined(target, b"TAGS", source, 1000)
    assert target.read_bytes() == b"TAGS" + body[1000:] and size == 4 + len(body) - 1000
    assert not target.is_symlink() and not (tmp_path / "elsewhere").exists()


def _graft_works(folder: Path) -> bool:
    """Whether this file system inserts blocks in front of a file (ext4 and XFS do, tmpfs not)."""
    from archiver import fs

    probe = folder / "probe"
    probe.write_bytes(bytes(8192))
    try:
        return fs.graft(probe, b"x" * (4096 + 10), 10) is not None
    finally:
        probe.unlink()


@pytest.mark.parametrize("id3_version", [3, 4])
def test_the_tag_is_grafted_in_front_of_the_audio_without_copying_it(tmp_path: Path, source: bytes,
                                                                     id3_version: int) -> None:
    """Where the file system can insert blocks, the downloaded file itself becomes the tagged
    one (same inode: its audio was not copied), padded to whole blocks, the same frames."""
    if not _graft_works(tmp_path):
        pytest.skip("this file system cannot insert a range in front of a file (fallocate INSERT_RANGE)")
    part = tmp_path / "song.mp3.part"
    part.write_bytes(source)
    inode = part.stat().st_ino
    got = _by_prelude(source, tmp_path, FULL, id3_version=id3_version)
    assert got is not None
    ours, fetched = got
    assert ours.stat().st_ino == inode
    assert (len(fetched.prelude) - _extent(source)) % 4096 == 0 and len(fetched.prelude) > _extent(source)
    assert _frames(ours) == _frames(_in_place(source, tmp_path, FULL, id3_version))
    assert _payload(ours) == source[_extent(source):]


def test_a_tag_smaller_than_the_sources_is_written_over_it(tmp_path: Path, source: bytes) -> None:
    """A source tag bigger than ours (long lyrics ours replace): ours is padded to its size and
    written over it; nothing is inserted, nothing copied."""
    raw = _seeded(tmp_path, USLT(encoding=3, lang="eng", desc="", text="la " * 10000))
    data = dataclasses.replace(FULL, lyrics="short", cover=None)
    (tmp_path / "song.mp3.part").write_bytes(raw)
    inode = (tmp_path / "song.mp3.part").stat().st_ino
    got = _by_prelude(raw, tmp_path, data)
    assert got is not None
    ours, fetched = got
    assert len(fetched.prelude) == _extent(raw) and ours.stat().st_size == len(raw) and ours.stat().st_ino == inode
    assert read_tags(ours)["lyrics"] == "short"
    assert _frames(ours) == _frames(_in_place(raw, tmp_path, data))


def test_a_much_bigger_source_tag_is_not_kept_as_zeros(tmp_path: Path, source: bytes) -> None:
    """Our tag far smaller than the source's (a provider's big cover, long lyrics): it gets the
    usual padding and the audio is copied behind it, rather than the file carrying the source
    tag's size in zeros."""
    raw = _seeded(tmp_path, USLT(encoding=3, lang="eng", desc="", text="la " * 100_000))
    data = dataclasses.replace(FULL, lyrics="short", cover=None)
    got = _by_prelude(raw, tmp_path, data)
    assert got is not None
    ours, fetched = got
    assert len(fetched.prelude) < _extent(raw) - 200_000 and ours.stat().st_size == len(fetched.prelude) + len(raw) - _extent(raw)
    assert _frames(ours) == _frames(_in_place(raw, tmp_path, data)) and _payload(ours) == raw[_extent(raw):]


@pytest.mark.parametrize("how", ["unsupported", "says yes, does nothing", "no block padding", "huge blocks"])
def test_without_a_graft_the_audio_is_copied_behind_the_tag(tmp_path: Path, source: bytes,
                                                           monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """A file system (or OS) that cannot insert, one that claims to and does not, a tag not padded
    to blocks, or blocks too big to pad to: the same frames and audio through the copy, and the
    `.part` is gone."""
    import errno

    from archiver import fs, syscalls

    block = 4096
    if how == "unsupported":
        monkeypatch.setattr(syscalls, "insert_range", lambda: lambda fd, length: errno.EOPNOTSUPP)
    elif how == "says yes, does nothing":
        monkeypatch.setattr(syscalls, "insert_range", lambda: lambda fd, length: 0)
    elif how == "no block padding":
        block = 0
    else:
        monkeypatch.setattr(fs, "GRAFT_MAX_BLOCK", 1024)
    part = tmp_path / "song.mp3.part"
    part.write_bytes(source)
    inode = part.stat().st_ino
    got = _by_prelude(source, tmp_path, FULL, block=block)
    assert got is not None
    ours, _fetched = got
    assert ours.stat().st_ino != inode
    assert _frames(ours) == _frames(_in_place(source, tmp_path, FULL))
    assert _payload(ours) == source[_extent(source):]


def test_an_interrupted_insert_is_asked_again(tmp_path: Path, source: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """fallocate interrupted by a signal (EINTR) is retried, as Python retries its own calls."""
    import errno

    from archiver import syscalls

    if not _graft_works(tmp_path):
        pytest.skip("this file system cannot insert a range in front of a file (fallocate INSERT_RANGE)")
    real = syscalls.insert_range()
    assert real is not None
    answers = [errno.EINTR, errno.EINTR]
    monkeypatch.setattr(syscalls, "insert_range", lambda: lambda fd, length: answers.pop() if answers else real(fd, length))
    part = tmp_path / "song.mp3.part"
    part.write_bytes(source)
    inode = part.stat().st_ino
    got = _by_prelude(source, tmp_path, FULL)
    assert got is not None and not answers and got[0].stat().st_ino == inode
    assert _payload(got[0]) == source[_extent(source):]


def test_a_full_disk_while_grafting_stops_downloads_and_leaves_no_half_file(
        tmp_path: Path, source: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from archiver import syscalls
    from archiver.errors import StorageError

    monkeypatch.setattr(syscalls, "insert_range", lambda: lambda fd, length: errno.ENOSPC)
    with pytest.raises(StorageError):
        _by_prelude(source, tmp_path, FULL)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@given(cuts=st.lists(st.integers(min_value=1, max_value=60_000), max_size=8))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_hash_taken_as_a_body_arrives_is_the_tagged_files(tmp_path: Path, cuts: list[int]) -> None:
    """libcurl reports progress at any point of the body, a few bytes into the source's tag or
    megabytes on: whatever the reports, the prelude the sink builds is the one tagging expects
    and the hash it records is the tagged file's, byte for byte."""
    from archiver import download

    source = (MEDIA / "sample.mp3").read_bytes()
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    job = download.Transfer(url="http://media.invalid/song.mp3", part=work / "song.mp3.part", expect="audio",
                            max_size=len(source), hash=False, prelude=Prelude(FULL, None, 3))
    sink = download._PartSink(job, 0, lambda _n: None)
    fd = sink.accept(200, [(b"Content-Length", str(len(source)).encode())])
    assert fd is not None
    written = 0
    for cut in sorted({min(c, len(source)) for c in cuts}) + [len(source)]:
        os.write(fd, source[written:cut])
        written = max(written, cut)
        assert sink.received(written)
    sink.close(True, None)
    assert sink.error is None and sink.prelude and sink.skip == _extent(source)
    fetched = Fetched(job.part, len(source), sink.digest, "mp3", prelude=sink.prelude, skip=sink.skip)
    done = finish_prelude(job.part, work / "song.tagging", fetched, job.prelude)
    assert done is not None
    assert sink.digest == hashlib.sha256((work / "song.tagging").read_bytes()).hexdigest()
