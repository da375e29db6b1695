"""Downloads over the simulator: naming, verification, resume, expiry, failures, verify/repair."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archiver.media import sniff
from archiver.simulator import Simulator
from conftest import sync_now as sync

SOURCES = ["ccapi-suno", "ccapi-producer", "mountsea", "acedata", "aimusicapi"]


def add(sim_cli, source: str, *ids: str) -> None:
    result = sim_cli("add", source, *ids)
    assert result.exit_code == 0, result.output




def assets(library: Path) -> list[dict]:
    con = sqlite3.connect(library / "archiver.db")
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute(
        "select a.*, c.clip_id, c.title from assets a join clips c on c.id = a.clip_pk order by a.id")]
    con.close()
    return rows


def strip_id3(data: bytes) -> bytes:
    """MPEG audio frames of an mp3: what tagging must never change."""
    if data[:3] == b"ID3":
        size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]
        footer = 10 if data[5] & 0x10 else 0
        data = data[10 + size + footer:]
    if data[-128:-125] == b"TAG":
        data = data[:-128]
    return data


def check_archived(sim: Simulator, library: Path) -> list[dict]:
    """Every asset downloaded, files where the DB says, covers byte-identical, audio frames identical."""
    rows = assets(library)
    assert rows
    for row in rows:
        assert row["state"] == "downloaded", row
        path = library / row["path"]
        assert path.is_file(), row
        data = path.read_bytes()
        assert len(data) == row["size"]
        assert hashlib.sha256(data).hexdigest() == row["sha256"], row  # recorded as it is on disk
        served = sim.media_bytes(row["url"])
        if row["kind"] == "image":
            assert data == served
        elif path.suffix == ".mp3":
            assert strip_id3(data) == strip_id3(served)
    assert not list(library.rglob("*.part"))
    return rows


def test_sync_archives_every_asset_of_every_source(sim, sim_cli, library: Path) -> None:
    for source in SOURCES:
        add(sim_cli, source, sim.add_task(source, steps=0))
    code, summary = sync(sim_cli)
    assert code == 0, summary
    rows = check_archived(sim, library)
    kinds = {(r["clip_id"], r["kind"]) for r in rows}
    assert summary["files_downloaded"] == len(rows) == len(kinds)
    for row in rows:
        assert row["path"].split("/")[0] in SOURCES
        if row["kind"] == "image":
            audio = next(r for r in rows if r["clip_pk"] == row["clip_pk"] and r["kind"] == "audio")
            assert Path(row["path"]).with_suffix("") == Path(audio["path"]).with_suffix("")  # same stem
    m4a = [r for r in rows if r["path"].endswith(".m4a")]
    assert m4a and all(sniff((library / r["path"]).read_bytes()[:64]) == "m4a" for r in m4a)


def test_resync_makes_no_media_requests(sim, sim_cli, library: Path) -> None:
    add(sim_cli, "acedata", sim.add_task("acedata", steps=0))
    sync(sim_cli)
    before = sim.count("media")
    assert before > 0
    code, summary = sync(sim_cli)
    assert code == 0 and summary["files_downloaded"] == 0
    assert sim.count("media") == before


HOSTILE = ["AC/DC", "..", "../../etc/passwd", "🎵🔥 Emoji Party 🎶", "x" * 300, "CON", "Same Title",
           "Same Title", "tab\tand\nnewline", "  .hidden. ", "", "nul\x00byte"]


def test_hostile_titles_stay_inside_and_never_collide(sim, sim_cli, library: Path) -> None:
    task = sim.add_task("ccapi-suno", clips=len(HOSTILE), titles=HOSTILE, steps=0)
    add(sim_cli, "ccapi-suno", task)
    code, summary = sync(sim_cli)
    assert code == 0, summary
    rows = check_archived(sim, library)
    paths = [r["path"] for r in rows]
    assert len(set(p.casefold() for p in paths)) == len(paths)
    root = library.resolve()
    for row in rows:
        path = (library / row["path"]).resolve()
        assert root in path.parents
        for part in Path(row["path"]).parts:
            assert len(part.encode()) <= 255 and part not in ("..", ".")
            assert not any(ord(ch) < 32 for ch in part) and not part.startswith((" ", "."))
            assert part.split(".")[0].upper() not in ("CON", "NUL")
        assert row["clip_id"][:8] in row["path"]


@pytest.mark.parametrize("kind", ["truncate", "drop"])
def test_dropped_connection_resumes_with_range(sim, sim_cli, library: Path, kind: str) -> None:
    task = sim.add_task("mountsea", clips=1, steps=0, audio_bytes=600_000)  # audio only, no cover
    add(sim_cli, "mountsea", task)
    sync(sim_cli, "--no-download")
    clip_id = assets(library)[0]["clip_id"]
    sim.inject(kind, clip_id=clip_id)
    code, summary = sync(sim_cli)
    assert code == 0, summary
    check_archived(sim, library)
    audio = [r for r in sim.requests if r.target == "media" and r.path.endswith(".mp3")]
    assert audio[0].fault == kind and "range" not in audio[0].headers
    # the kept bytes' tail is compared with the server's first (one small ranged request) ...
    probe_from, probe_to = map(int, audio[1].headers["range"].removeprefix("bytes=").split("-"))
    assert audio[1].status == 206 and 0 < probe_to - probe_from + 1 <= 64 * 1024
    # ... then the transfer resumes right after them
    start = int(audio[2].headers["range"].removeprefix("bytes=").rstrip("-"))
    assert start == probe_to + 1 and 0 < start < 600_000 and audio[2].status == 206
    if kind == "truncate":  # a clean end after half the body: every byte that came was kept
        assert start == len(sim.media_bytes("http://media" + audio[0].path)) // 2


def test_no_range_support_restarts_cleanly(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from archiver.cli import cli

    lib = tmp_path / "lib"
    with Simulator(range_support=False) as sim:
        task = sim.add_task("ccapi-producer", clips=1, steps=0, audio_bytes=400_000)
        runner = CliRunner()
        runner.invoke(cli, ["--library", str(lib), "add", "ccapi-producer", task], env=sim.env())
        runner.invoke(cli, ["--library", str(lib), "sync", "--no-download"], env=sim.env())
        clip_id = assets(lib)[0]["clip_id"]
        sim.inject("drop", clip_id=clip_id)
        result = runner.invoke(cli, ["--library", str(lib), "sync", "--now", "--json"], env=sim.env())
        assert result.exit_code == 0, result.output
        check_archived(sim, lib)


@pytest.mark.parametrize("kind", ["truncate", "html200", "no_length", "500", "reset"])
def test_bad_bodies_are_rejected_and_retried(sim, sim_cli, library: Path, kind: str) -> None:
    task = sim.add_task("ccapi-suno", clips=1, steps=0, audio_bytes=300_000)
    add(sim_cli, "ccapi-suno", task)
    sync(sim_cli, "--no-download")
    clip_id = assets(library)[0]["clip_id"]
    sim.inject(kind, target="media", clip_id=clip_id, times=1)
    code, summary = sync(sim_cli)
    assert code == 0, summary
    check_archived(sim, library)
    assert any(r.fault == kind for r in sim.requests)


def test_stalled_transfer_is_caught(sim, sim_cli, library: Path) -> None:
    task = sim.add_task("ccapi-suno", clips=1, steps=0, audio_bytes=300_000)
    add(sim_cli, "ccapi-suno", task)
    sync(sim_cli, "--no-download")
    clip_id = assets(library)[0]["clip_id"]
    sim.inject("stall", target="media", clip_id=clip_id, delay=5.0)
    started = time.monotonic()
    code, summary = sync(sim_cli)  # read_timeout = 2 in the test config
    assert code == 0, summary
    assert time.monotonic() - started < 15
    check_archived(sim, library)


def test_expired_link_is_refreshed_through_a_repoll(sim, sim_cli, library: Path) -> None:
    task = sim.add_task("acedata", clips=1, steps=0)
    add(sim_cli, "acedata", task)
    sync(sim_cli, "--no-download")
    before = assets(library)
    sim.inject("expire", clip_id=before[0]["clip_id"])
    api_before = sim.count("api")
    code, summary = sync(sim_cli)
    assert code == 0, summary
    after = check_archived(sim, library)
    assert sim.count("api") > api_before  # the re-poll
    assert {r["url"] for r in after} != {r["url"] for r in before}
    assert any(r.status == 403 for r in sim.requests if r.target == "media")


def test_dead_link_is_reported_and_retried_next_run(sim, sim_cli, library: Path) -> None:
    task = sim.add_task("aimusicapi", clips=1, steps=0)
    add(sim_cli, "aimusicapi", task)
    sync(sim_cli, "--no-download")
    clip_id = assets(library)[0]["clip_id"]
    sim.inject("gone", clip_id=clip_id, times=-1)
    code, summary = sync(sim_cli)
    assert code == 1
    assert summary["downloads_failed"] >= 1 and any(clip_id in e for e in summary["errors"])
    failed = [r for r in assets(library) if r["state"] == "failed"]
    assert failed and all(r["last_error"] for r in failed) and not any(r["path"] for r in failed)
    media = sim.count("media")
    code, summary = sync(sim_cli)  # a link that never heals: tried again, reported again
    assert code == 1 and any(clip_id in e for e in summary["errors"])
    assert sim.count("media") > media
    assert not list(library.rglob("*.part")) and not list(library.rglob("*.m4a"))


def test_only_http_urls_and_size_limit(sim_cli, library: Path, tmp_path: Path) -> None:
    body = {"code": 200, "message": "success", "data": [
        {"clip_id": "c-file", "title": "Local", "audio_url": "file:///etc/passwd", "state": "succeeded"},
        {"clip_id": "c-ftp", "title": "Ftp", "audio_url": "ftp://example.invalid/a.mp3", "state": "succeeded"},
        {"clip_id": "c-data", "title": "Data", "audio_url": "data:audio/mpeg;base64,AAAA", "state": "succeeded"},
    ]}
    payload = tmp_path / "body.json"
    payload.write_text(json.dumps(body))
    assert sim_cli("import", "--task-id", "t-local", str(payload)).exit_code == 0
    code, summary = sync(sim_cli)
    assert code == 1
    rows = assets(library)
    assert all(r["state"] == "failed" and "refusing" in r["last_error"] for r in rows)
    assert not [p for p in library.rglob("*") if p.is_file() and p.suffix in (".mp3", ".part")]


def test_max_file_size_is_enforced(sim, sim_cli, library: Path) -> None:
    task = sim.add_task("ccapi-suno", clips=1, steps=0, audio_bytes=200_000)
    add(sim_cli, "ccapi-suno", task)
    code, summary = sync(sim_cli, extra_config="max_file_size = 100000\n")
    assert code == 1
    audio = next(r for r in assets(library) if r["kind"] == "audio")
    assert audio["state"] == "failed" and "max_file_size" in audio["last_error"]
    assert not list(library.rglob("*.mp3")) and not list(library.rglob("*.part"))


def test_enospc_stops_downloads_with_one_clear_message(sim, sim_cli, library: Path, monkeypatch) -> None:
    import archiver.download as download

    for _ in range(3):
        add(sim_cli, "ccapi-suno", sim.add_task("ccapi-suno", clips=2, steps=0))
    real_new_fd = download.new_fd
    calls = {"n": 0}

    def full(path: Path) -> int:  # after two files, bodies land on a device that is always full
        calls["n"] += 1
        fd = real_new_fd(path)
        if calls["n"] >= 3:
            device = os.open("/dev/full", os.O_WRONLY | os.O_CLOEXEC)
            os.dup2(device, fd)
            os.close(device)
        return fd

    monkeypatch.setattr(download, "new_fd", full)
    result = sim_cli("sync", "--now")
    assert result.exit_code == 1
    assert result.output.count("No space left on device") == 1, result.output
    assert "Traceback" not in result.output
    rows = assets(library)
    for row in rows:
        if row["state"] == "downloaded":
            assert (library / row["path"]).stat().st_size == row["size"]
        else:
            assert row["path"] is None
    con = sqlite3.connect(library / "archiver.db")
    (recorded,) = con.execute("select files_downloaded from sync_runs order by id desc limit 1").fetchone()
    con.close()
    assert recorded == sum(r["state"] == "downloaded" for r in rows)  # counted even though the run stopped
    monkeypatch.setattr(download, "new_fd", real_new_fd)
    code, summary = sync(sim_cli)
    assert code == 0, summary
    check_archived(sim, library)


def test_missing_file_is_fetched_again(sim, sim_cli, library: Path) -> None:
    task_id = sim.add_task("mountsea", steps=0)
    add(sim_cli, "mountsea", task_id)
    sync(sim_cli)
    (row,) = [r for r in assets(library) if r["kind"] == "audio"]
    (library / "kept.mp3").write_bytes(b"x")  # the library is there: one file of it is gone
    (library / row["path"]).unlink()
    code, summary = sync(sim_cli)
    assert code == 0 and summary["files_downloaded"] == 1
    again = check_archived(sim, library)
    assert [r["path"] for r in again if r["kind"] == "audio"] == [row["path"]]


def test_verify_catches_changes_and_repair_restores(sim, sim_cli, library: Path) -> None:
    add(sim_cli, "acedata", sim.add_task("acedata", clips=2, steps=0))
    sync(sim_cli)
    clean = sim_cli("verify")
    assert clean.exit_code == 0 and "0 missing, 0 changed, 0 orphan" in clean.output
    rows = assets(library)
    changed = library / rows[0]["path"]
    original = changed.read_bytes()
    changed.write_bytes(original[:-10] + b"0123456789")
    gone = library / rows[1]["path"]
    gone.unlink()
    (library / "stray.mp3").write_text("not ours")
    report = sim_cli("verify")
    assert report.exit_code == 1
    assert f"changed: {rows[0]['path']}" in report.output
    assert f"missing: {rows[1]['path']}" in report.output
    assert "orphan: stray.mp3" in report.output
    (library / "stray.mp3").unlink()
    repaired = sim_cli("verify", "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert changed.read_bytes() == original and gone.exists()
    assert sim_cli("verify").exit_code == 0


def _spawn_sync(sim: Simulator, library: Path) -> subprocess.Popen:
    env = {**os.environ, **sim.env(), "ARCHIVER_LIBRARY": str(library)}
    return subprocess.Popen([sys.executable, "-m", "archiver", "sync", "--now", "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_kill_9_mid_download_then_finish(sim, tmp_path: Path) -> None:
    library = tmp_path / "killed"
    ids = [sim.add_task("ccapi-suno", clips=2, steps=0, audio_bytes=2_000_000) for _ in range(3)]
    env = {**os.environ, **sim.env(), "ARCHIVER_LIBRARY": str(library)}
    subprocess.run([sys.executable, "-m", "archiver", "add", "ccapi-suno", *ids], env=env, check=True,
                   capture_output=True)
    for _ in range(6):
        sim.inject("stall", target="media", delay=1.0)  # slow the transfers so the kill lands mid-file
    proc = _spawn_sync(sim, library)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list(library.rglob("*.part")):
        time.sleep(0.02)
    assert list(library.rglob("*.part")), "no download started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    sim.clear_faults()
    done = subprocess.run([sys.executable, "-m", "archiver", "sync", "--now", "--json"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = check_archived(sim, library)
    assert len(rows) == 12
    files = [p for p in library.rglob("*") if p.is_file() and p.suffix in (".mp3", ".jpg")]
    assert len(files) == 12  # no duplicates
    con = sqlite3.connect(library / "archiver.db")
    assert con.execute("pragma integrity_check").fetchone()[0] == "ok"
    assert con.execute("select count(*) from clips").fetchone()[0] == 6
    con.close()


def test_no_progress_bar_when_not_a_tty(sim, sim_cli) -> None:
    add(sim_cli, "ccapi-suno", sim.add_task("ccapi-suno", steps=0))
    result = sim_cli("sync", "--now")
    assert result.exit_code == 0
    assert "━" not in result.output and "\x1b[" not in result.output
    assert "2 file" not in result.output or "downloaded" in result.output


def test_a_full_disk_behind_a_tagging_error_is_recognised() -> None:
    from archiver.finishing import storage_cause
    from archiver.errors import TaggingError

    def wrapped(errno_value: int) -> TaggingError:
        try:
            try:
                raise OSError(errno_value, os.strerror(errno_value))
            except OSError as inner:
                raise RuntimeError("library error") from inner  # what mutagen does
        except RuntimeError as middle:
            try:
                raise TaggingError("cannot write mp3 tags") from middle
            except TaggingError as outer:
                return outer

    assert storage_cause(wrapped(errno.ENOSPC)).errno == errno.ENOSPC
    assert storage_cause(wrapped(errno.EACCES)) is None


def test_every_file_is_on_disk_before_its_name_appears(sim, sim_cli, library: Path, monkeypatch) -> None:
    """Each file placed (MP3 tagged tags-first, another format tagged in place, a cover kept as
    sent) was fsynced after its last write: its size and change time when placed are those it had
    when the last fsync of it returned."""
    import archiver.archive as archive

    synced: dict[int, tuple[int, int]] = {}  # inode -> (size, ctime) at its last fsync
    placed: list[tuple[str, tuple[int, int], tuple[int, int] | None]] = []
    real_fsync, real_place = os.fsync, archive.place

    def fsync(fd: int) -> None:
        real_fsync(fd)
        info = os.fstat(fd)
        synced[info.st_ino] = (info.st_size, info.st_ctime_ns)

    def place(part: Path, final: Path, **kwargs: object) -> None:
        info = os.stat(part)
        placed.append((final.name, (info.st_size, info.st_ctime_ns), synced.get(info.st_ino)))
        real_place(part, final, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(archive, "place", place)
    add(sim_cli, "ccapi-suno", sim.add_task("ccapi-suno", clips=2, steps=0, audio_format="mp3"))
    add(sim_cli, "acedata", sim.add_task("acedata", clips=1, steps=0, audio_format="m4a"))
    code, summary = sync(sim_cli)
    assert code == 0, summary
    assert sorted(name.rsplit(".", 1)[1] for name, _, _ in placed) == ["jpg"] * 3 + ["m4a", "mp3", "mp3"]
    for name, now, at_fsync in placed:
        assert at_fsync == now, name
    check_archived(sim, library)


def test_where_libcurl_cannot_be_driven_through_ctypes_pycurl_downloads_alike(sim, sim_cli, library: Path,
                                                                               monkeypatch) -> None:
    from archiver import curl_file

    def unavailable() -> None:
        raise curl_file.Unavailable("no libcurl could be loaded through ctypes")

    monkeypatch.setattr(curl_file, "_library", unavailable)
    add(sim_cli, "ccapi-suno", sim.add_task("ccapi-suno", clips=2, steps=0))
    add(sim_cli, "acedata", sim.add_task("acedata", clips=1, steps=0, audio_format="m4a"))
    code, summary = sync(sim_cli)
    assert code == 0, summary
    check_archived(sim, library)
