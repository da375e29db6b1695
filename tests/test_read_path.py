"""The read commands and the idle cron run import no ORM, HTTP or tag library, and say the same.

Each command runs in a fresh interpreter (as cron or a shell would) on a library made by
`archiver import` of the saved provider bodies, one clip of which has its audio on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from archiver.library import detail, list_clips, list_tasks, search, stats
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
print(json.dumps({"code": code, "heavy": sorted({m.split(".")[0] for m in sys.modules} & set(heavy))}),
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


@pytest.mark.parametrize("args", READS, ids=" ".join)
def test_read_commands_import_nothing_heavy(imported: Path, args: tuple[str, ...]) -> None:
    _out, probe = _run(imported, *args)
    assert probe["heavy"] == [], f"{args} imported {probe['heavy']}"


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


def test_idle_sync_imports_nothing_heavy_and_is_recorded(imported: Path) -> None:
    _idle_library(imported)
    runs = _runs(imported)
    out, probe = _run(imported, "sync")
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


@pytest.mark.parametrize("leftover", ["part", "unrecorded", "missing", "swapped", "due"])
def test_idle_sync_notices_work_and_takes_the_normal_path(imported: Path, leftover: str) -> None:
    _idle_library(imported)
    if leftover == "part":
        (imported / "acedata" / "Other.mp3.part").write_bytes(b"half")
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
        assert not (imported / "acedata" / "Other.mp3.part").exists()  # and cleaned up after the dead run


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
