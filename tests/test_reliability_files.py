"""Files the library does not own are never replaced, links are never written through, and a
library that is temporarily absent is not taken for lost data."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from archiver import fs
from archiver.claims import part_tag
from archiver.errors import UnsafePath
from archiver.tagging import read_tags
from archiver.testkit import Catalog
from conftest import sync_now as sync

TEMPLATE = 'path_template = "{title}.{ext}"\n'


def add(sim_cli, source: str, *ids: str) -> None:
    result = sim_cli("add", source, *ids)
    assert result.exit_code == 0, result.output


def assets(catalog: Catalog) -> list[dict]:
    """Every asset with its clip id."""
    return [dict(r) for r in catalog.rows("select a.*, c.clip_id from assets a join clips c on c.id = a.clip_pk "
                                          "order by a.id")]


@pytest.fixture
def catalog_elsewhere(engine: str, catalog: Catalog, tmp_path: Path) -> tuple[dict[str, str], Catalog]:
    """A catalog that is not in the library folder, and the environment naming it: an SQLite file
    in another folder, or the PostgreSQL catalog (never in the folder)."""
    if engine == "postgresql":
        return {}, catalog
    db = tmp_path / "elsewhere" / "archiver.db"
    db.parent.mkdir()
    return {"ARCHIVER_DB": str(db)}, Catalog.sqlite(db)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def clip_ids(sim, task_id: str, source: str = "acedata") -> list[str]:
    return [c.clip_id for c in sim._tasks[(source, task_id)].clips]


# ---------------------------------------------------------------- 1. never replace what is not ours


def test_a_users_file_at_the_target_is_never_replaced(sim, sim_cli, library: Path, catalog: Catalog) -> None:
    mine = library / "Song.mp3"
    mine.write_bytes(b"my own recording, not archiver's")
    cover = library / "Song.jpg"
    cover.write_bytes(b"my own picture")
    task = sim.add_task("acedata", clips=1, steps=0, titles=["Song"], audio_format="mp3")
    add(sim_cli, "acedata", task)
    code, summary = sync(sim_cli, extra_config=TEMPLATE)
    assert code == 0 and summary["files_downloaded"] == 2, summary
    assert mine.read_bytes() == b"my own recording, not archiver's"
    assert cover.read_bytes() == b"my own picture"
    (clip,) = clip_ids(sim, task)
    paths = sorted(r["path"] for r in assets(catalog))
    assert paths == [f"Song [{clip[:8]}].jpg", f"Song [{clip[:8]}].mp3"]
    assert read_tags(library / f"Song [{clip[:8]}].mp3")["clip_id"] == clip


def test_a_lost_database_never_lets_a_twin_overwrite_the_only_copy(sim, sim_cli, library: Path, catalog: Catalog,
                                                                   tmp_path: Path) -> None:
    first = sim.add_task("acedata", clips=1, steps=0, titles=["Song"], audio_format="mp3")
    twin = sim.add_task("acedata", clips=1, steps=0, titles=["Song"], audio_format="mp3")
    add(sim_cli, "acedata", first)
    assert sync(sim_cli, extra_config=TEMPLATE)[0] == 0
    only_copy = library / "Song.mp3"
    before = digest(only_copy)
    (first_clip,) = clip_ids(sim, first)
    sim.inject("gone", target="media", clip_id=first_clip, times=-1)  # its link has expired
    catalog.drop()  # the database is lost
    add(sim_cli, "acedata", twin)
    code, summary = sync(sim_cli, extra_config=TEMPLATE)
    assert code == 0, summary
    assert digest(only_copy) == before and read_tags(only_copy)["clip_id"] == first_clip
    (twin_clip,) = clip_ids(sim, twin)
    twin_file = library / f"Song [{twin_clip[:8]}].mp3"
    assert read_tags(twin_file)["clip_id"] == twin_clip
    # the first task, added again, adopts its own file (its tags name it) without a download
    add(sim_cli, "acedata", first)
    code, summary = sync(sim_cli, extra_config=TEMPLATE)
    assert code == 0 and summary["downloads_failed"] == 0, summary
    recorded = {r["clip_id"]: r["path"] for r in assets(catalog) if r["kind"] == "audio"}
    assert recorded == {first_clip: "Song.mp3", twin_clip: twin_file.name}
    assert digest(only_copy) == before


def test_place_refuses_to_replace_a_file_it_does_not_own(tmp_path: Path) -> None:
    part, final = tmp_path / "a.mp3.part", tmp_path / "a.mp3"
    part.write_bytes(b"new")
    final.write_bytes(b"someone else's")
    with pytest.raises(UnsafePath):
        fs.place(part, final, owned=False)
    assert final.read_bytes() == b"someone else's" and part.exists()
    fs.place(part, final, owned=True)  # a repair of the library's own file
    assert final.read_bytes() == b"new" and not part.exists()


# ---------------------------------------------------------------- 2. no write follows a link


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    victim = tmp_path / "outside" / "precious.txt"
    victim.parent.mkdir()
    victim.write_bytes(b"a file outside the library" * 100)
    return victim


@pytest.mark.parametrize("planted", ["Song.mp3.part", "Song.jpg.part"])
def test_a_planted_link_at_a_part_file_is_refused(sim, sim_cli, library: Path, catalog: Catalog, outside: Path,
                                                   engine: str, planted: str) -> None:
    """On PostgreSQL a worker's temporary names carry its tag (claims.part_tag): the link is
    planted at the name this worker will use."""
    worker: tuple[str, ...] = ()
    if engine == "postgresql":
        worker = ("--worker-id", "w1")
        planted = planted.removesuffix(".part") + part_tag("w1") + ".part"
    before = outside.read_bytes()
    (library / planted).symlink_to(outside)
    task = sim.add_task("acedata", clips=1, steps=0, titles=["Song"], audio_format="mp3")
    add(sim_cli, "acedata", task)
    code, summary = sync(sim_cli, *worker, extra_config=TEMPLATE)
    assert outside.read_bytes() == before
    assert (library / planted).is_symlink()  # left alone, reported
    assert code == 1 and any("symbolic link" in e for e in summary["errors"]), summary
    for row in assets(catalog):
        if row["path"]:
            assert not (library / row["path"]).is_symlink()


def test_a_planted_link_at_the_final_path_is_never_written_through(sim, sim_cli, library: Path, catalog: Catalog,
                                                                   outside: Path) -> None:
    before = outside.read_bytes()
    (library / "Song.mp3").symlink_to(outside)
    task = sim.add_task("acedata", clips=1, steps=0, titles=["Song"], audio_format="mp3")
    add(sim_cli, "acedata", task)
    code, summary = sync(sim_cli, extra_config=TEMPLATE)
    assert code == 0, summary
    assert outside.read_bytes() == before and (library / "Song.mp3").is_symlink()
    for row in assets(catalog):
        assert row["state"] == "downloaded" and not (library / row["path"]).is_symlink()


@pytest.mark.parametrize("planted", ["Song.txt.part", "Song.txt"])
def test_lyrics_sidecar_never_writes_through_a_link(sim, sim_cli, library: Path, outside: Path,
                                                    planted: str) -> None:
    before = outside.read_bytes()
    (library / planted).symlink_to(outside)
    task = sim.add_task("acedata", clips=1, steps=0, titles=["Song"], lyrics="la la la", audio_format="mp3")
    add(sim_cli, "acedata", task)
    sync(sim_cli, extra_config=TEMPLATE + "lyrics_sidecar = true\n")
    assert outside.read_bytes() == before
    sidecars = [p for p in library.glob("Song*.txt") if not p.is_symlink()]
    assert sidecars and all("la la la" in p.read_text() for p in sidecars)


def test_verify_reports_an_archived_path_turned_into_a_link(sim, sim_cli, library: Path, catalog: Catalog,
                                                           outside: Path) -> None:
    task = sim.add_task("acedata", clips=2, steps=0)
    add(sim_cli, "acedata", task)
    assert sync(sim_cli)[0] == 0
    audio = next(r for r in assets(catalog) if r["kind"] == "audio")
    path = library / audio["path"]
    path.unlink()
    path.symlink_to(outside)
    report = sim_cli("verify")
    assert report.exit_code == 1 and f"symlink: {audio['path']}" in report.output
    before = outside.read_bytes()
    assert sync(sim_cli)[0] == 0  # a sync neither follows nor replaces it
    retag = sim_cli("retag")
    assert retag.exit_code == 1 and "symbolic link" in retag.output
    assert outside.read_bytes() == before and path.is_symlink()


def test_safe_open_helpers_refuse_links(tmp_path: Path, outside: Path) -> None:
    link = tmp_path / "x.part"
    link.symlink_to(outside)
    with pytest.raises(UnsafePath):
        os.close(fs.append_fd(link))
    with pytest.raises(UnsafePath):
        fs.open_read(link)
    with pytest.raises(UnsafePath):
        fs.regular_size(link)
    with fs.create_new(link) as fh:  # the link is removed, never followed
        fh.write(b"ours")
    assert not link.is_symlink() and link.read_bytes() == b"ours"
    assert outside.read_bytes().startswith(b"a file outside")


# ---------------------------------------------------------------- 7. an absent library is not data loss


@pytest.mark.parametrize("absent", ["emptied", "missing"])
def test_sync_refuses_a_library_whose_files_are_all_gone(sim, sim_cli, library: Path, tmp_path: Path,
                                                         catalog_elsewhere: tuple[dict[str, str], Catalog],
                                                         absent: str) -> None:
    env, elsewhere = catalog_elsewhere
    task = sim.add_task("acedata", clips=2, steps=0)
    result = sim_cli("add", "acedata", task, env=env)
    assert result.exit_code == 0
    assert sync(sim_cli, env=env)[0] == 0
    before = assets(elsewhere)
    saved = tmp_path / "unmounted"
    shutil.move(str(library), saved)
    if absent == "emptied":
        library.mkdir()
    sim.inject("gone", target="media", times=-1)  # every link has expired meanwhile
    refused = sim_cli("sync", "--now", env=env)
    assert refused.exit_code == 1 and "is its disk mounted" in refused.output
    assert assets(elsewhere) == before  # nothing was marked missing or failed
    shutil.rmtree(library, ignore_errors=True)
    shutil.move(str(saved), library)
    code, summary = sync(sim_cli, env=env)
    assert code == 0 and summary["files_downloaded"] == 0, summary
    assert sim_cli("verify", env=env).exit_code == 0


def test_a_file_whose_content_matches_the_record_is_reattached(sim, sim_cli, library: Path,
                                                               catalog: Catalog) -> None:
    task = sim.add_task("acedata", clips=2, steps=0)
    add(sim_cli, "acedata", task)
    assert sync(sim_cli)[0] == 0
    # what an earlier release left after an unmounted disk: every asset failed, files orphaned
    catalog.execute("update assets set state = 'failed', last_error = 'link expired'")
    sim.inject("gone", target="media", times=-1)
    code, summary = sync(sim_cli)
    assert code == 0 and summary["files_downloaded"] == 0, summary
    assert all(r["state"] == "downloaded" for r in assets(catalog))
    assert sim_cli("verify").exit_code == 0


# ---------------------------------------------------------------- 12. redirects to other schemes


@pytest.fixture
def redirector():
    """A media host whose every answer is a redirect to the Location named in the path."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import unquote

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", unquote(self.path.split("/to/", 1)[1]))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/to/"
    server.shutdown()
    server.server_close()


def test_a_redirect_to_a_non_http_url_is_a_clear_download_error(sim_cli, library: Path, catalog: Catalog,
                                                                tmp_path: Path, redirector: str) -> None:
    import json
    from urllib.parse import quote

    targets = ["data:audio/mpeg;base64,AAAA", "about:blank", "ftp://example.invalid/a.mp3",
               "file:///etc/passwd", "http://[::1", "http://127.0.0.1:99999/a.mp3"]
    body = {"code": 200, "message": "success", "data": [
        {"clip_id": f"c{i}", "title": f"T{i}", "audio_url": redirector + quote(t, safe=""), "state": "succeeded"}
        for i, t in enumerate(targets)]}
    payload = tmp_path / "body.json"
    payload.write_text(json.dumps(body))
    assert sim_cli("import", "--task-id", "t-redirect", str(payload)).exit_code == 0
    code, summary = sync(sim_cli)
    assert code == 1, summary
    failed = [r for r in assets(catalog) if r["kind"] == "audio"]
    assert len(failed) == len(targets)
    for row in failed:
        assert row["state"] == "failed" and "refusing" in row["last_error"], row
        assert "internal error" not in row["last_error"]
    assert summary["retries"] == 0 and not any("retrying" in e for e in summary["errors"])  # refused for good


# ---------------------------------------------------------------- messages of a run: inert and redacted


def test_sync_messages_and_stored_errors_are_inert_and_hide_url_credentials(tmp_path: Path,
                                                                           pg_catalog: str | None) -> None:
    from archiver.testkit import Lib, Loopback

    from archiver.simulator import Simulator

    body = ('{"error": {"code": "bad", "message": "\\u001b]0;owned\\u0007\\u001b[2Jsee '
            'https://user:hunter2-pass@cdn.example/x \\u009b31m\\r\\nline two"}}').encode()
    with Simulator() as sim, Loopback() as loop:
        loop.routes["/api/producer/tasks"] = lambda h: h.reply(400, body, "application/json")
        lib = Lib.create(sim, tmp_path / "inert", "connect_timeout = 2\nread_timeout = 2\nretry_budget = 1\n",
                         pg_catalog)
        assert lib.cli("add", "acedata", "t-1").exit_code == 0
        result = lib.cli("sync", "--now", "--no-download", env={"ARCHIVER_ACEDATA_BASE_URL": loop.url("/api/")})
    assert result.exit_code == 1
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "hunter2-pass" not in output and "cdn.example" in output
    assert not any(ch in output for ch in "\x1b\x07\x9b\r"), repr(output)
    ((stored,),) = lib.query("select error_text from sync_runs")
    assert "cdn.example" in stored and "hunter2-pass" not in stored


def test_an_absurd_duration_is_reported_by_sync(sim, sim_cli, library: Path) -> None:
    task = sim.add_task("acedata", clips=1, steps=0, duration_lie=1e308)
    add(sim_cli, "acedata", task)
    result = sim_cli("sync", "--now")
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "duration" in result.output


def test_an_absent_library_root_is_not_recreated(sim, sim_cli, library: Path, tmp_path: Path,
                                                 catalog_elsewhere: tuple[dict[str, str], Catalog]) -> None:
    env, _elsewhere = catalog_elsewhere
    assert sim_cli("add", "acedata", sim.add_task("acedata", clips=1, steps=0), env=env).exit_code == 0
    assert sync(sim_cli, env=env)[0] == 0
    shutil.move(str(library), tmp_path / "away")
    refused = sim_cli("sync", "--now", env=env)
    assert refused.exit_code == 1 and "missing" in refused.output and not library.exists()


def test_repair_fetches_a_changed_audio_file_even_when_its_tags_still_name_the_clip(
        sim, sim_cli, library: Path, catalog: Catalog) -> None:
    task = sim.add_task("acedata", clips=2, steps=0, audio_format="mp3")
    add(sim_cli, "acedata", task)
    assert sync(sim_cli)[0] == 0
    audio = next(r for r in assets(catalog) if r["kind"] == "audio")
    path = library / audio["path"]
    good = path.read_bytes()
    path.write_bytes(good[:-4096] + bytes(4096))  # damaged audio frames, the tags intact
    assert read_tags(path)["clip_id"] == audio["clip_id"]
    report = sim_cli("verify", "--repair")
    assert f"changed: {audio['path']}" in report.output
    assert path.read_bytes() == good and digest(path) == audio["sha256"]
    assert sim_cli("verify").exit_code == 0


def test_a_leftover_part_that_is_not_this_files_beginning_is_not_resumed(sim, sim_cli, library: Path,
                                                                         catalog: Catalog) -> None:
    """A `.part` is named after its final path: one left by another song's killed transfer under the
    same name (or a file changed upstream) must start over, not be spliced onto this song."""
    from archiver.testkit import strip_id3

    task = sim.add_task("acedata", clips=1, steps=0, titles=["Song"], audio_format="mp3", audio_bytes=300_000)
    (clip,) = clip_ids(sim, task)
    blob = sim._clips[clip].audio
    source = b"".join(bytes(chunk) for chunk in blob.chunks(0, blob.size))[:blob.size]
    other = bytearray(source[:150_000])  # a valid MP3 start, other bytes where the songs differ
    other[100_000:150_000] = bytes(b ^ 0x55 for b in other[100_000:150_000])
    (library / "Song.mp3.part").write_bytes(bytes(other))
    add(sim_cli, "acedata", task)
    code, summary = sync(sim_cli, extra_config=TEMPLATE)
    assert code == 0, summary
    (audio,) = [r for r in assets(catalog) if r["kind"] == "audio"]
    assert strip_id3((library / audio["path"]).read_bytes()) == strip_id3(source)


@pytest.mark.sqlite_only  # a fleet worker's `.part` carries its own name (claims.py): no other run resumes it
def test_a_leftover_part_of_this_file_is_resumed_from_its_end(sim, sim_cli, library: Path,
                                                              catalog: Catalog) -> None:
    """What a killed run left in the `.part` is kept: the next run asks only for what follows."""
    from archiver.testkit import strip_id3

    task = sim.add_task("acedata", clips=1, steps=0, titles=["Song"], audio_format="mp3", audio_bytes=300_000)
    (clip,) = clip_ids(sim, task)
    blob = sim._clips[clip].audio
    source = b"".join(bytes(chunk) for chunk in blob.chunks(0, blob.size))[:blob.size]
    (library / "Song.mp3.part").write_bytes(source[:150_000])
    add(sim_cli, "acedata", task)
    code, summary = sync(sim_cli, extra_config=TEMPLATE)
    assert code == 0, summary
    (audio,) = [r for r in assets(catalog) if r["kind"] == "audio"]
    assert strip_id3((library / audio["path"]).read_bytes()) == strip_id3(source)
    asked = [r.headers.get("range") for r in sim.requests if r.target == "media" and r.path.endswith(".mp3")]
    assert asked[-1] == "bytes=150000-", asked  # after the probe of the kept bytes' tail


def test_lyrics_sidecar_never_replaces_the_users_own_text_file(sim, sim_cli, library: Path) -> None:
    task = sim.add_task("acedata", clips=1, steps=0, titles=["Song"], lyrics="la la la", audio_format="mp3")
    add(sim_cli, "acedata", task)
    assert sync(sim_cli, extra_config=TEMPLATE)[0] == 0
    notes = library / "Song.txt"
    notes.write_text("my own notes about this song\n", encoding="utf-8")
    retag = sim_cli("retag", extra_config=TEMPLATE + "lyrics_sidecar = true\n")
    assert retag.exit_code == 1 and "Song.txt" in retag.output
    assert notes.read_text(encoding="utf-8") == "my own notes about this song\n"
    notes.unlink()
    assert sim_cli("retag", extra_config=TEMPLATE + "lyrics_sidecar = true\n").exit_code == 0
    assert "la la la" in notes.read_text(encoding="utf-8")
    assert sim_cli("retag", extra_config=TEMPLATE + "lyrics_sidecar = true\n").exit_code == 0  # ours: rewritten


def test_a_cover_placed_for_a_failed_song_is_not_left_when_it_cannot_be_recorded(
        sim, sim_cli, library: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills while a song downloads and the catalog cannot take a write either: the
    song's cover, already synced and moved into place, is recorded nowhere and has no song beside
    it to prove whose it is. It must not stay as a stray file; the next run archives the clip."""
    import archiver.archive as archive
    from archiver.errors import DatabaseError
    from archiver.store import Store

    task = sim.add_task("acedata", clips=1, steps=0)
    add(sim_cli, "acedata", task)
    real_prepare = archive.Archiver._prepare

    async def full_disk_for_audio(self, client, clip, task_, asset, target, *rest):
        if asset.kind == "audio":
            raise fs.storage_error(OSError(28, "No space left on device"), target)
        return await real_prepare(self, client, clip, task_, asset, target, *rest)

    def catalog_full(self, *args, **kwargs):
        raise DatabaseError("database or disk is full")

    with monkeypatch.context() as patched:
        patched.setattr(archive.Archiver, "_prepare", full_disk_for_audio)
        patched.setattr(Store, "assets_done", catalog_full)
        code, summary = sync(sim_cli)
    assert code == 1 and "downloads stopped" in str(summary), summary
    on_disk, _parts, _links = fs.walk_library(library)
    recorded = {row["path"] for row in assets(catalog) if row["path"]}
    assert {p for p in on_disk if p.endswith(".jpg")} <= recorded, (on_disk, recorded)
    code, summary = sync(sim_cli)
    assert code == 0 and summary["files_downloaded"] == 2, summary
    on_disk, parts, _links = fs.walk_library(library)
    recorded = {row["path"] for row in assets(catalog)}
    assert parts == [] and {p for p in on_disk if not p.startswith("archiver.db")} == recorded, (on_disk, recorded)


def test_a_title_that_fills_the_whole_file_name_is_archived(sim, sim_cli, library: Path, catalog: Catalog) -> None:
    """A final name near the 255-byte limit still has room for its temporary names (a fleet
    worker's carry its tag too): the song and its cover are archived, no temporary file is left."""
    task = sim.add_task("acedata", clips=1, steps=0, titles=["歌" * 120], audio_format="mp3")
    add(sim_cli, "acedata", task)
    code, summary = sync(sim_cli)
    assert code == 0 and summary["files_downloaded"] == 2, summary
    on_disk, parts, _links = fs.walk_library(library)
    recorded = {row["path"] for row in assets(catalog)}
    assert parts == [] and recorded <= on_disk and all(len(p.rsplit("/", 1)[-1].encode()) <= 255 for p in recorded)


def test_only_the_database_files_are_left_out_of_the_walk(tmp_path: Path) -> None:
    """A song whose name starts like the database's ("archiver.db" as a title under a
    `{title}.{ext}` template) is a file of the library: left out, it would be missing forever."""
    from archiver.fs import holds_a_file, walk_library

    root = tmp_path / "lib"
    database = ["archiver.db", "archiver.db-wal", "archiver.db-shm", "archiver.db-journal",
                "archiver.db.damaged-20261203-041501", "archiver.db.damaged-20261203-041501-wal"]
    songs = ["archiver.db.m4a", "archiver.db.jpg", "archiver.db [1dd08826].mp3", "sub/archiver.db.txt",
             "archiver.db.damaged-soon.mp3", "archiver.dbx"]
    for name in database:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    assert holds_a_file(root) is False and walk_library(root)[0] == set()
    for name in songs:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    assert walk_library(root)[0] == set(songs)


@pytest.mark.parametrize("planted", [
    [], ["a/b/song.mp3"], ["a/.part-only.mp3.part"], ["archiver.db", "archiver.db-wal", ".archiver.lock"],
    ["deep/er/still/cover.jpg"], ["link"], ["a/b/c/.x.part", "a/b/real.m4a"],
])
def test_the_mounted_check_agrees_with_the_walk(tmp_path: Path, planted: list[str]) -> None:
    from archiver.fs import LOCK_NAME, holds_a_file, walk_library

    root = tmp_path / "lib"
    root.mkdir()
    (root / "empty" / "dirs").mkdir(parents=True)
    for name in planted:
        path = root / (LOCK_NAME if name == ".archiver.lock" else name)
        path.parent.mkdir(parents=True, exist_ok=True)
        if name == "link":
            path.symlink_to(tmp_path)  # a link out of the library is no file of it
        else:
            path.write_bytes(b"x")
    assert holds_a_file(root) is bool(walk_library(root)[0])
    assert holds_a_file(tmp_path / "absent") is False


def test_the_mounted_check_lists_no_folder_past_the_first_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from archiver import fs

    for number in range(30):
        (tmp_path / f"album {number}").mkdir()
        (tmp_path / f"album {number}" / "song.mp3").write_bytes(b"x")
    listed: list[str] = []
    real = os.scandir

    def counting(path: str) -> object:
        listed.append(path)
        return real(path)

    monkeypatch.setattr(fs.os, "scandir", counting)
    assert fs.holds_a_file(tmp_path)
    assert len(listed) == 2  # the root, then the first album


def test_the_mounted_check_and_the_walk_agree_on_a_folder_that_fails_while_listed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    from archiver import fs

    (tmp_path / "album").mkdir()
    (tmp_path / "album" / "song.mp3").write_bytes(b"x")
    (tmp_path / "cover.jpg").write_bytes(b"x")
    real = os.scandir

    class Failing:
        """The root's listing: one entry, then an I/O error (a dying disk)."""

        def __init__(self, path: str) -> None:
            self.inner = real(path)

        def __enter__(self) -> "Failing":
            return self

        def __exit__(self, *exc: object) -> None:
            self.inner.close()

        def __iter__(self) -> object:
            yield next(iter(self.inner))
            raise OSError(errno.EIO, "input/output error")

    monkeypatch.setattr(fs.os, "scandir", lambda path: Failing(path) if path == str(tmp_path) else real(path))
    assert fs.holds_a_file(tmp_path) is bool(fs.walk_library(tmp_path)[0]) is False


def test_a_video_in_an_mp4_container_never_takes_the_songs_name(sim, sim_cli, library: Path, catalog: Catalog,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A producer clip's video may come as an MP4 container branded M4A, and its song is .m4a
    at the same stem: the video is its own .mp4, fetched, and the song is never taken for it."""
    from archiver.providers import acedata

    real = acedata.producer_clip

    def with_video(clip, url, state, full, *, acedata):  # noqa: ANN001, ANN202
        body = real(clip, url, state, full, acedata=acedata)
        if full:
            body["video_url"] = url(clip, clip.audio_ext)  # the song's bytes: an M4A container
        return body

    monkeypatch.setattr(acedata, "producer_clip", with_video)
    task = sim.add_task("acedata", clips=1, steps=0, audio_format="m4a")
    add(sim_cli, "acedata", task)
    for _ in range(2):  # the second run finds both in place: nothing is adopted twice
        code, summary = sync(sim_cli)
        assert code == 0, summary
    paths = {row["kind"]: row["path"] for row in assets(catalog)}
    assert paths["audio"].endswith(".m4a") and paths["video"] == paths["audio"][:-4] + ".mp4", paths
    song = library / paths["audio"]
    assert read_tags(song)["clip_id"] and (library / paths["video"]).stat().st_size > 0


@pytest.mark.parametrize("name, ours", [
    ("a/Song [1dd08826].mp3.part", True), ("a/Song [1dd08826].jpg.part", True), ("a/song [1DD08826].txt.part", True),
    ("a/Song [1dd08826].mp3" + part_tag("w1") + ".part", True), ("a/Song [1dd08826].~tag.part", True),
    ("a/Other.~tag.part", True), ("a/" + "歌" * 60 + "~0123456789ab.part", True), ("a/cover.jpg.part", True),
    (".archiver.stamp.part", True), ("new/Fresh.m4a.part", True),
    ("My Mix.mp3.part", False), ("a/notes.part", False), ("a/Song.mp3.part", False), ("b/Song [1dd08826].mp3.part", False),
    ("a/Firefox download.flac.part", False),
])
def test_only_leftovers_a_library_file_accounts_for_are_archivers(tmp_path: Path, name: str, ours: bool) -> None:
    from archiver.fs import stem_key
    from archiver.leftovers import split_leftovers

    stems = {stem_key("a/Song [1dd08826].mp3"), stem_key("new/Fresh.m4a")}  # recorded, and being written
    part = tmp_path / name
    assert split_leftovers(tmp_path, [part], stems) == (([part], []) if ours else ([], [part]))


@pytest.mark.parametrize("url, kind, ext", [
    ("http://m/a.mp3", "audio", "mp3"), ("http://m/a.m4a", "audio", "m4a"), ("http://m/a.mp4", "audio", "mp3"),
    ("http://m/a.bin", "audio", "mp3"), ("http://m/a.m4a", "video", "mp4"), ("http://m/a.webm", "video", "webm"),
    ("http://m/a.mp3", "image", "jpg"), ("http://m/a.txt", "image", "jpg"), ("http://m/a.jpeg", "image", "jpg"),
    ("http://m/a.png", "image", "png"), ("http://m/a.bin", "image", "jpg"), ("http://m/a.lrc", "video", "mp4"),
])
def test_a_guessed_name_never_takes_a_siblings(url: str, kind: str, ext: str) -> None:
    """Song, cover, video and lyrics share a stem: a URL's suffix names the file only when it is
    one of its kind's and of no other kind (a cover URL ending .mp3 would take the song's name)."""
    from archiver.download import guess_ext

    assert guess_ext(url, kind) == ext


@pytest.mark.sqlite_only(reason="rebuild writes an SQLite database")
def test_a_fifo_in_the_library_never_blocks_a_command(sim, sim_cli, library: Path) -> None:
    """Opening a FIFO waits for a writer: no command opens one, recorded or not."""
    import subprocess
    import sys

    task = sim.add_task("acedata", steps=0)
    sim_cli("add", "acedata", task)
    assert sync(sim_cli)[0] == 0
    os.mkfifo(library / "acedata" / "stray.fifo")
    song = next(p for p in library.rglob("*.m4a"))
    kept = song.with_name("kept")
    song.rename(kept)
    os.mkfifo(song)  # where a recorded file should be
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    for args in (("verify",), ("ls",), ("rebuild", "--force")):
        result = subprocess.run([sys.executable, "-m", "archiver", "--library", str(library), *args],
                                capture_output=True, text=True, timeout=60, env=env, check=False)
        assert result.returncode in (0, 1) and "Traceback" not in result.stderr, (args, result.stderr)
    assert stat_is_fifo(song) and stat_is_fifo(library / "acedata" / "stray.fifo")


def stat_is_fifo(path: Path) -> bool:
    import stat

    return stat.S_ISFIFO(os.lstat(path).st_mode)


@pytest.mark.sqlite_only(reason="the row is edited through the SQLite file")
def test_a_stored_time_that_is_not_a_time_is_read_as_none(sim, sim_cli, library: Path) -> None:
    """Another tool wrote text that is no time into a clip's and a task's times: commands that
    read through the ORM take it as no time instead of ending in an internal error."""
    import sqlite3

    sim_cli("add", "acedata", sim.add_task("acedata", steps=0))
    assert sync(sim_cli)[0] == 0
    con = sqlite3.connect(library / "archiver.db")
    with con:
        con.execute("UPDATE clips SET created_at = 'notadate'")
        con.execute("UPDATE tasks SET next_poll_at = 'soon', finished_at = '2026-02-30'")
    con.close()
    for args in (("retag",), ("verify",), ("sync", "--now")):
        result = sim_cli(*args)
        assert result.exit_code == 0 and "internal error" not in result.output, (args, result.output)
