"""The read commands and the idle cron run import no ORM, HTTP or tag library, and say the same.

Each command runs in a fresh interpreter (as cron or a shell would) on a library made by
`archiver import` of the saved provider bodies, one clip of which has its audio on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.library import detail, list_clips, list_tasks, search
from archiver.overview import stats
from archiver.store import Store

from conftest import PAYLOADS

HEAVY = ("sqlalchemy", "sqlmodel", "pydantic", "httpx", "pycurl", "mutagen")

PROBE = """
import json, sys
heavy = json.loads(sys.argv[1])
sys.argv = ["archiver", *sys.argv[2:]]
from archiver import cli
code = 0
try:
    cli.main()
except SystemExit as exc:
    code = exc.code or 0
sys.stdout.flush()
loaded = {m.split(".")[0] for m in sys.modules} | set(sys.modules)  # packages, or modules by full name
print(json.dumps({"code": code, "heavy": sorted(loaded & set(heavy))}),
      file=sys.stderr)
"""

AUDIO = "acedata/Woke up.mp3"


def _run(library: Path, *args: str, heavy: tuple[str, ...] = HEAVY) -> tuple[str, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(heavy), "--library", str(library), *args],
                         capture_output=True, text=True, env=env, check=False, timeout=120)
    return out.stdout, json.loads(out.stderr.strip().splitlines()[-1])


@pytest.fixture
def imported(library: Path) -> Path:
    return import_payloads(library)


def import_payloads(library: Path) -> Path:
    """The saved provider bodies imported into `library`; one clip's audio on disk."""
    for body in sorted(PAYLOADS.glob("*.json")):
        if body.name != "aimusicapi_task.json":  # it carries no task id
            _run(library, "import", str(body))
    data = b"ID3 not really audio"
    (library / AUDIO).parent.mkdir(parents=True)
    (library / AUDIO).write_bytes(data)
    con = sqlite3.connect(library / "archiver.db")
    with con:
        con.execute("UPDATE assets SET state = 'downloaded', path = ?, size = ?, sha256 = ?, tagged = 1 "
                    "WHERE kind = 'audio' AND clip_pk = (SELECT id FROM clips WHERE clip_id LIKE '1dd08826%')",
                    (AUDIO, len(data), hashlib.sha256(data).hexdigest()))
    con.close()
    return library


READS = [("ls",), ("ls", "--format", "json"), ("ls", "sun", "--format", "m3u"), ("search", "sun"),
         ("search", "sun", "--format", "json"), ("show", "1dd08826"), ("show", "task_xo", "--format", "json"),
         ("stats",), ("stats", "--format", "json"), ("tasks",), ("tasks", "--format", "csv"),
         ("export", "m3u"), ("export", "json", "year:2025.."), ("config",), ("--help",), ("show", "nothing-like-it")]


# What a read command on an SQLite library, with an empty config file, has no use for either: the
# provider modules (only `config` shows their settings), PostgreSQL's, a TOML parser, csv but for CSV.
LAZY = ("archiver.providers", "archiver.providers.simulated", "archiver.records", "archiver.pgdb",
        "archiver.pgsearch", "archiver.pgschema", "tomllib", "csv")
PROVIDERS = {"archiver.providers", "archiver.providers.simulated", "archiver.records"}


@pytest.mark.parametrize("args", READS, ids=" ".join)
def test_read_commands_import_nothing_heavy(imported: Path, tmp_path: Path, args: tuple[str, ...]) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    _out, probe = _run(imported, "--config", str(empty), *args, heavy=HEAVY + LAZY)
    heavy = [m for m in probe["heavy"] if m in HEAVY]
    assert heavy == [], f"{args} imported {heavy}"
    expected = (PROVIDERS if args[0] == "config" else set()) | ({"csv"} if "csv" in args else set())
    assert set(probe["heavy"]) - set(HEAVY) == expected, args


def test_read_commands_say_what_the_orm_path_says(imported: Path) -> None:
    """The stdlib reader and a Store over SQLAlchemy run the same SQL: same rows, same spelling."""
    with Store(f"sqlite:///{imported / 'archiver.db'}", create=False) as store:
        expected = {"ls": list_clips(store), "search": search(store, "sun"), "tasks": list_tasks(store),
                    "show": detail(store, "1dd08826"), "stats": stats(store)}
    got = {name: json.loads(_run(imported, *args, "--format", "json")[0]) for name, args in (
        ("ls", ("ls",)), ("search", ("search", "sun")), ("tasks", ("tasks",)), ("show", ("show", "1dd08826")),
        ("stats", ("stats",)))}
    assert got == json.loads(json.dumps(expected))
    assert [r["audio_path"] for r in got["ls"] if r["audio_path"]] == [AUDIO]


def test_missing_and_old_libraries_are_refused_without_writing(tmp_path: Path, imported: Path) -> None:
    out, probe = _run(tmp_path / "nowhere", "ls")
    assert probe["code"] == 1 and not (tmp_path / "nowhere").exists()
    con = sqlite3.connect(imported / "archiver.db")
    con.execute("PRAGMA user_version = 1")
    con.close()
    before = sorted(p.name for p in imported.iterdir())
    result = subprocess.run([sys.executable, "-m", "archiver", "--library", str(imported), "ls"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "older than this archiver" in result.stderr
    assert sorted(p.name for p in imported.iterdir()) == before


def _runs(library: Path) -> int:
    con = sqlite3.connect(library / "archiver.db")
    try:
        return int(con.execute("SELECT COUNT(*) FROM sync_runs WHERE exit_code = 0").fetchone()[0])
    finally:
        con.close()


def _idle_library(library: Path) -> None:
    """Only finished tasks, every file on disk: nothing for a sync to do."""
    con = sqlite3.connect(library / "archiver.db")
    with con:
        con.execute("UPDATE tasks SET status = 'failed' WHERE status NOT IN ('succeeded', 'failed', 'cancelled')")
        con.execute("DELETE FROM assets WHERE state != 'downloaded'")
    con.close()


def test_idle_sync_imports_nothing_heavy_and_is_recorded(imported: Path, tmp_path: Path) -> None:
    _idle_library(imported)
    runs = _runs(imported)
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    out, probe = _run(imported, "--config", str(empty), "sync", heavy=HEAVY + LAZY)  # no provider either
    assert probe == {"code": 0, "heavy": []}
    assert out.startswith("polled 0 task(s) in 0 request(s); 0 succeeded")
    assert _runs(imported) == runs + 1  # `stats` shows this run as the last sync
    stats_out, _ = _run(imported, "stats", "--format", "json")
    assert json.loads(stats_out)["last_sync"]["runs"] == runs + 1
    summary = json.loads(_run(imported, "sync", "--json")[0])
    assert summary["passes"] == 1 and summary["exit_code"] == 0 and summary["files_downloaded"] == 0


def test_idle_sync_loads_no_hashing(imported: Path) -> None:
    """Loading OpenSSL is a good part of an idle cron run's start-up, and it hashes nothing."""
    _idle_library(imported)
    _out, probe = _run(imported, "sync", heavy=("hashlib", "_hashlib"))
    assert probe == {"code": 0, "heavy": []}


@pytest.mark.parametrize("leftover", ["part", "foreign-part", "unrecorded", "missing", "swapped", "due"])
def test_idle_sync_notices_work_and_takes_the_normal_path(imported: Path, leftover: str) -> None:
    _idle_library(imported)
    if leftover == "part":  # the lyrics of the archived song, being written when a run died
        (imported / "acedata" / "Woke up.txt.part").write_bytes(b"half")
    elif leftover == "foreign-part":  # a browser's download saved in the folder: not archiver's
        (imported / "acedata" / "My Mix.mp3.part").write_bytes(b"half")
    elif leftover == "unrecorded":
        (imported / "acedata" / "stranger.mp3").write_bytes(b"x")
    elif leftover == "missing":
        (imported / AUDIO).rename(imported / "elsewhere.bin")
    elif leftover == "swapped":  # as many files as recorded paths, but not the same ones
        (imported / AUDIO).rename(imported / "acedata" / "Woke up (2).mp3")
    else:
        con = sqlite3.connect(imported / "archiver.db")
        with con:
            con.execute("UPDATE tasks SET status = 'running', next_poll_at = NULL WHERE task_id LIKE 'task_BE5%'")
        con.close()
    _out, probe = _run(imported, "sync", "--no-download" if leftover == "due" else "--quiet")
    assert "sqlmodel" in probe["heavy"]  # the full sync ran
    if leftover == "part":
        assert not (imported / "acedata" / "Woke up.txt.part").exists()  # and cleaned up after the dead run
    if leftover == "foreign-part":
        assert (imported / "acedata" / "My Mix.mp3.part").read_bytes() == b"half"


def test_idle_sync_still_takes_the_lock(imported: Path) -> None:
    from archiver.lock import LibraryLock

    _idle_library(imported)
    with LibraryLock(imported, None):
        _out, probe = _run(imported, "sync")
    assert probe["code"] == 75


def test_export_m3u8_is_the_utf8_playlist(imported: Path, tmp_path: Path) -> None:
    con = sqlite3.connect(imported / "archiver.db")
    with con:
        con.execute("UPDATE clips SET title = 'Über den Wolken – 雨' WHERE clip_id LIKE '1dd08826%'")
    con.close()
    m3u8, m3u = tmp_path / "lists" / "all.m3u8", tmp_path / "lists" / "all.m3u"
    for target, fmt in ((m3u8, "m3u8"), (m3u, "m3u")):
        _out, probe = _run(imported, "export", fmt, "-o", str(target))
        assert probe == {"code": 0, "heavy": []}
    raw = m3u8.read_bytes()
    text = raw.decode("utf-8")
    assert text.startswith("#EXTM3U\n") and "Über den Wolken – 雨" in text
    assert text.splitlines()[2] == "../library/" + AUDIO  # relative to the playlist
    assert raw == m3u.read_bytes()
    stdout, _ = _run(imported, "ls", "--format", "m3u8")
    assert "Über den Wolken – 雨" in stdout and stdout.startswith("#EXTM3U")


def _idle_in_process(library: Path) -> object:
    from archiver.config import load_config
    from archiver.idle import idle_run

    config = load_config(env={}, overrides={"library": str(library)})
    return idle_run(config, sources=None, ignore_schedule=False, until_done=False, wait=None)


@pytest.fixture
def stamped(imported: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An idle library whose last idle run left its folder stamp (no settling time needed)."""
    from archiver import dirstamp

    _idle_library(imported)
    monkeypatch.setattr(dirstamp, "RACY_SECONDS", 0.0)
    time.sleep(0.05)  # past the clock tick of the fixture's own writes
    assert _idle_in_process(imported) is not None
    assert dirstamp.load(imported) is not None
    time.sleep(0.05)  # a change below lands in a later tick than the stamp
    return imported


def test_idle_sync_with_a_stamp_does_not_walk_the_library(stamped: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import archiver.idle

    def walked(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the library was walked although no folder changed")

    monkeypatch.setattr(archiver.idle, "walk_library", walked)
    assert _idle_in_process(stamped) is not None
    assert _idle_in_process(stamped) is not None


@pytest.mark.parametrize("change", ["part", "unrecorded", "missing", "swapped", "root-file", "link", "subfolder",
                                    "record-moved", "record-added", "record-deleted", "database-replaced",
                                    "trigger-dropped"])
def test_idle_sync_with_a_stamp_still_notices_every_change(stamped: Path, change: str) -> None:
    folder = stamped / "acedata"
    if change == "part":
        (folder / "Other.mp3.part").write_bytes(b"half")
    elif change == "unrecorded":
        (folder / "stranger.mp3").write_bytes(b"x")
    elif change == "missing":
        (stamped / AUDIO).unlink()
    elif change == "swapped":
        (stamped / AUDIO).rename(folder / "Woke up (2).mp3")
    elif change == "root-file":
        (stamped / "stranger.mp3").write_bytes(b"x")
    elif change == "link":
        (folder / "elsewhere.mp3").symlink_to("/etc/hostname")
    elif change == "subfolder":
        (folder / "deeper").mkdir()
        (folder / "deeper" / "song.mp3").write_bytes(b"x")
    else:  # the database changes while the folders do not
        con = sqlite3.connect(stamped / "archiver.db")
        with con:
            if change == "record-moved":
                con.execute("UPDATE assets SET path = 'acedata/Renamed.mp3' WHERE path = ?", (AUDIO,))
            elif change in ("record-deleted", "database-replaced", "trigger-dropped"):
                if change == "trigger-dropped":  # the count stands still from here on
                    con.execute("DROP TRIGGER assets_path_delete")
                con.execute("DELETE FROM assets WHERE path = ?", (AUDIO,))
                if change == "database-replaced":  # another database whose count of path changes matches
                    con.execute("UPDATE path_changes SET generation = 'another', changes = changes - 1")
            else:
                con.execute("INSERT INTO assets (clip_pk, kind, url, path, size, sha256, state, attempts, tagged) "
                            "SELECT clip_pk, 'image', 'https://cdn.example/x.jpg', 'acedata/Woke up.jpg', 1, "
                            "'00', state, 0, 0 FROM assets WHERE path = ?", (AUDIO,))
        con.close()
    assert _idle_in_process(stamped) is None


def test_a_restored_copy_of_the_database_is_not_taken_for_the_one_the_stamp_saw(
        imported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backup from before the stamp, restored and then changed as often as the live database
    was, has the stamp's count: the generation drawn when the stamp was made tells them apart."""
    from archiver import dirstamp

    _idle_library(imported)
    monkeypatch.setattr(dirstamp, "RACY_SECONDS", 0.0)
    db = imported / "archiver.db"
    backup = imported.parent / "backup.db"
    shutil.copyfile(db, backup)
    moved = AUDIO.replace("Woke up", "Moved")
    con = sqlite3.connect(db)
    with con:  # one path changes, on disk as in the database
        con.execute("UPDATE assets SET path = ? WHERE path = ?", (moved, AUDIO))
    con.close()
    (imported / AUDIO).rename(imported / moved)
    time.sleep(0.05)
    assert _idle_in_process(imported) is not None and dirstamp.load(imported) is not None
    time.sleep(0.05)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(backup, db)  # the old database is back: it records AUDIO, which is gone
    con = sqlite3.connect(db)
    with con:  # and has one path change of its own since, so its count is the stamp's
        con.execute("UPDATE path_changes SET changes = changes + 1")
    con.close()
    assert _idle_in_process(imported) is None


def test_idle_stamp_is_not_trusted_when_planted_or_fresh(imported: Path) -> None:
    from archiver import dirstamp

    _idle_library(imported)
    assert _idle_in_process(imported) is not None
    assert dirstamp.load(imported) is None  # folders written a moment ago: too fresh to vouch for
    real = imported.parent / "stamp.json"
    real.write_text(json.dumps({"v": dirstamp.VERSION, "paths": "", "root": [], "dirs": []}))
    (imported / ".archiver.stamp").symlink_to(real)
    assert dirstamp.load(imported) is None  # a link is never read
    (imported / ".archiver.stamp").unlink()
    (imported / ".archiver.stamp").write_bytes(real.read_bytes())
    assert dirstamp.load(imported) is not None  # the same stamp as a file of its own is
    (imported / ".archiver.stamp").unlink()
    (imported / ".archiver.stamp").write_text("{not json")
    assert dirstamp.load(imported) is None
    assert _idle_in_process(imported) is not None  # and the run still decides by walking


@pytest.mark.parametrize("change", ["root-link", "missing"])
def test_a_change_made_while_an_idle_run_works_is_noticed_by_the_next(imported: Path, change: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The stamp holds what the walk saw, not what the folders look like when it is written later."""
    import archiver.idle
    from archiver import dirstamp

    _idle_library(imported)
    monkeypatch.setattr(dirstamp, "RACY_SECONDS", 0.0)
    time.sleep(0.05)
    real = archiver.idle._exactly_recorded

    def meanwhile(*args: Any) -> Any:  # after the walk, before the stamp is written
        monkeypatch.setattr(archiver.idle, "_exactly_recorded", real)
        time.sleep(0.05)
        if change == "root-link":
            (imported / "planted.mp3").symlink_to("/etc/hostname")
        else:
            (imported / AUDIO).unlink()
        return real(*args)

    monkeypatch.setattr(archiver.idle, "_exactly_recorded", meanwhile)
    assert _idle_in_process(imported) is not None  # this run had listed everything before the change
    assert _idle_in_process(imported) is None  # the next one sees it


def test_a_link_named_like_the_database_is_noticed_with_a_stamp(stamped: Path) -> None:
    (stamped / "archiver.db-journal").symlink_to("/etc/hostname")
    assert _idle_in_process(stamped) is None


_ANY_VALUE = st.one_of(st.none(), st.text(max_size=12), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False), st.binary(max_size=6),
                       st.sampled_from(["pending", "running", "succeeded", "failed", "cancelled", "downloaded",
                                        "cancelled ", "failed\0", "Succeeded", "d"]))


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(_ANY_VALUE, max_size=25), excluded=st.sets(st.sampled_from(
    ["cancelled", "failed", "succeeded", "downloaded", "pending", "running"]), min_size=1))
@pytest.mark.parametrize("declared", ["VARCHAR", "BLOB"])
def test_the_idle_checks_ranges_select_exactly_what_not_in_selects(declared: str, rows: list[Any],
                                                                  excluded: set[str]) -> None:
    """The idle sync counts unfinished tasks and undownloaded files with ranges (an index seek)
    where NOT IN would scan: the same rows for whatever a column holds, typed or not."""
    from archiver.idle import _not_in

    con = sqlite3.connect(":memory:")
    con.execute(f"CREATE TABLE t (status {declared})")
    con.execute("CREATE INDEX ix ON t (status)")
    con.executemany("INSERT INTO t VALUES (?)", [(v,) for v in rows])
    marks = ", ".join(f"'{v}'" for v in excluded)
    expected = con.execute(f"SELECT rowid FROM t WHERE status NOT IN ({marks}) ORDER BY rowid").fetchall()
    assert con.execute(f"SELECT rowid FROM t WHERE {_not_in('status', excluded)} ORDER BY rowid").fetchall() == expected
    con.close()
