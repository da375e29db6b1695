"""`fs.place` never replaces a file it does not own, even one that appears between its check and
its rename (another fleet worker placing the same name at that moment): the rename itself refuses
an existing target, through each of the mechanisms `fs.rename_new` falls back on."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver import fs, syscalls
from archiver.errors import PartGone, UnsafePath


def _no_hard_links(src: object, dst: object, **_kw: object) -> None:
    raise PermissionError(errno.EPERM, "hard links are not supported here")


@pytest.fixture(params=["native", "hard link"])
def mechanism(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The atomic ways `rename_new` has: the system call, and a hard link where it is refused."""
    if request.param == "native":
        if syscalls.rename_noreplace() is None:
            pytest.skip("no renameat2/renamex_np on this system")
    else:
        monkeypatch.setattr(syscalls, "rename_noreplace", lambda: None)
    return str(request.param)


def test_a_file_placed_between_the_check_and_the_rename_is_not_replaced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mechanism: str) -> None:
    part, final = tmp_path / "Song.mp3.~w00000001.part", tmp_path / "Song.mp3"
    part.write_bytes(b"mine")
    real = os.path.lexists

    def lexists(path: object) -> bool:  # the check ran just before another worker's rename
        if Path(os.fspath(path)) == final and not getattr(lexists, "raced", False):
            lexists.raced = True  # type: ignore[attr-defined]
            final.write_bytes(b"the other worker's")
            return False
        return real(path)

    monkeypatch.setattr(fs.os.path, "lexists", lexists)
    with pytest.raises(UnsafePath, match="does not own"):
        fs.place(part, final, owned=False)
    assert final.read_bytes() == b"the other worker's"
    assert part.read_bytes() == b"mine" and os.stat(final).st_nlink == 1


def test_of_workers_placing_one_name_at_once_exactly_one_wins(tmp_path: Path, mechanism: str) -> None:
    final = tmp_path / "cover.jpg"
    for round_ in range(20):
        final.unlink(missing_ok=True)
        parts = [tmp_path / f"cover.jpg.~w{n:08x}.part" for n in range(6)]
        for n, part in enumerate(parts):
            part.write_bytes(b"worker %d" % n)
        gate = threading.Barrier(len(parts))
        outcomes: dict[int, str] = {}

        def one(n: int) -> None:
            gate.wait()
            try:
                fs.place(parts[n], final, owned=False, durable=False)
                outcomes[n] = "placed"
            except UnsafePath:
                outcomes[n] = "refused"

        threads = [threading.Thread(target=one, args=(n,)) for n in range(len(parts))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [n for n, outcome in outcomes.items() if outcome == "placed"]
        assert len(winners) == 1 and len(outcomes) == len(parts), (round_, outcomes)
        assert final.read_bytes() == b"worker %d" % winners[0]
        assert [p.exists() for p in parts] == [n != winners[0] for n in range(len(parts))]


def test_without_atomic_renames_or_hard_links_a_present_file_is_still_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(syscalls, "rename_noreplace", lambda: None)
    monkeypatch.setattr(fs.os, "link", _no_hard_links)
    part, final = tmp_path / "a.mp3.part", tmp_path / "a.mp3"
    part.write_bytes(b"new")
    fs.place(part, final, owned=False)
    assert final.read_bytes() == b"new" and not part.exists()
    part.write_bytes(b"newer")
    with pytest.raises(UnsafePath):
        fs.place(part, final, owned=False)
    fs.place(part, final, owned=True)  # the library's own file (a repair) is replaced as before
    assert final.read_bytes() == b"newer"


def test_a_temporary_file_removed_before_placing_is_a_clear_error(tmp_path: Path, mechanism: str) -> None:
    part, final = tmp_path / "Song.mp3.~w00000001.part", tmp_path / "Song.mp3"
    with pytest.raises(PartGone, match="Song.mp3.~w00000001.part was removed before it was placed"):
        fs.place(part, final, owned=False)
    assert not final.exists()


def test_a_part_left_linked_to_a_placed_file_is_never_resumed(tmp_path: Path) -> None:
    """A crash between `rename_new`'s link and unlink leaves one file under two names: resuming the
    `.part` would append to the archived file."""
    part, final = tmp_path / "cover.jpg.part", tmp_path / "cover.jpg"
    final.write_bytes(b"archived")
    os.link(final, part)
    assert fs.regular_size(part) is None
    assert not part.exists() and final.read_bytes() == b"archived"
    part.write_bytes(b"half")
    assert fs.regular_size(part) == 4


def test_a_missing_temporary_file_met_anywhere_is_told_as_such(tmp_path: Path) -> None:
    part = tmp_path / "Song.~w00000001.~tag.part"
    try:
        try:
            os.replace(part, tmp_path / "x")
        except FileNotFoundError as exc:
            raise RuntimeError("tagging failed") from exc
    except RuntimeError as wrapped:
        gone = fs.removed_part(wrapped)
    assert isinstance(gone, PartGone) and "Song.~w00000001.~tag.part was removed" in str(gone)
    assert fs.removed_part(FileNotFoundError(errno.ENOENT, "gone", str(tmp_path / "Song.mp3"))) is None
    part.write_bytes(b"")  # still there: some other failure
    assert fs.removed_part(FileNotFoundError(errno.ENOENT, "gone", str(part))) is None


@settings(max_examples=300, deadline=None)
@given(base=st.text(min_size=1, max_size=250).filter(lambda b: "/" not in b and "\x00" not in b),
       tail=st.sampled_from([".part", ".~tag.part", ".~w0b4f5aa2.part", ".~w0b4f5aa2.~tag.part"]))
def test_temporary_names_fit_one_file_name_and_stay_the_same(base: str, tail: str) -> None:
    name = fs.temp_path(Path("/lib/x"), base, tail).name
    assert len(name.encode("utf-8", "surrogateescape")) <= fs.NAME_MAX and name.endswith(tail)
    assert name == fs.temp_path(Path("/lib/x"), base, tail).name  # a later run finds it to resume
    if len((base + tail).encode("utf-8", "surrogateescape")) <= fs.NAME_MAX:
        assert name == base + tail
    else:
        assert fs.temp_path(Path("/lib/x"), base + "x", tail).name != name  # a longer sibling gets its own
        assert fs.shortened(name[:-len(tail)])
        from archiver.leftovers import split_leftovers  # a run's leftover of it is known as archiver's

        assert split_leftovers(Path("/lib"), [Path("/lib/x") / name], set())[0] == [Path("/lib/x") / name]


def test_without_a_c_library_the_portable_paths_are_taken(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Windows has no process-wide C library for ctypes to name (CDLL(None) is a TypeError there)."""
    import ctypes

    def nameless(*_args: object, **_kwargs: object) -> None:
        raise TypeError("argument of type 'NoneType' is not iterable")

    calls = (syscalls.libc, syscalls.insert_range, syscalls.rename_noreplace, syscalls.start_writeback)
    for call in calls:
        call.cache_clear()
    monkeypatch.setattr(ctypes, "CDLL", nameless)
    try:
        assert [call() for call in calls] == [None] * 4
        fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o644)
        fs.start_writeback(fd)  # nothing to do, nothing raised
        os.close(fd)
        fs.rename_new(tmp_path / "f", tmp_path / "g")  # the hard-link way
        assert (tmp_path / "g").exists() and not (tmp_path / "f").exists()
    finally:
        monkeypatch.undo()
        for call in calls:
            call.cache_clear()


def test_a_fifo_is_refused_for_reading_and_appending_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "x.mp3.part"
    os.mkfifo(fifo)
    for open_fd in (fs.read_fd, fs.append_fd):
        with pytest.raises(UnsafePath, match="not a regular file"):
            open_fd(fifo)
