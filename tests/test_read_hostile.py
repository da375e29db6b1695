"""The read commands given what a careless script, a hostile shell or another tool hands them:
argument bytes that are not UTF-8, absurd numbers, output paths that are devices or FIFOs, closed
standard streams, rows another program wrote (times that are not times, text that is not UTF-8).
Each must end in a clean message and exit code, or in the listing, never in "internal error".

Commands run in a fresh interpreter with real argv bytes, as a shell would start them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from archiver.config import load_config
from archiver.errors import ConfigError
from archiver.library import exact_detail, resolve
from archiver.readdb import ReadDB

from test_read_path import AUDIO, import_payloads


@pytest.fixture
def imported(library: Path) -> Path:
    return import_payloads(library)


def _archiver(library: Path, *args: str | bytes, stdout: int | None = subprocess.PIPE,
              close_stdout: bool = False) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    return subprocess.run([sys.executable, "-m", "archiver", "--library", str(library), *args],
                          stdout=stdout, stderr=subprocess.PIPE, env=env, check=False, timeout=120,
                          preexec_fn=(lambda: os.close(1)) if close_stdout else None)


def _clean(result: subprocess.CompletedProcess[bytes], code: int) -> str:
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == code, err
    assert "internal error" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("args", [
    (b"ls", b"\xff"), (b"ls", b"title:\xff"), (b"export", b"m3u", b"\xff"), (b"show", b"\xff"),
    (b"search", b"a\xff"), (b"ls", b"--format", b"{title}\xff"), (b"ls", b"--sort", b"title\xff"),
])
def test_arguments_that_are_not_utf8_are_usage_errors(imported: Path, args: tuple[bytes, ...]) -> None:
    err = _clean(_archiver(imported, *args), 2)
    assert "is not valid UTF-8 text" in err


def test_an_output_file_name_may_be_any_bytes(imported: Path, tmp_path: Path) -> None:
    target = os.fsencode(tmp_path) + b"/\xff.m3u"
    _clean(_archiver(imported, b"export", b"m3u", b"-o", target), 0)
    assert Path(os.fsdecode(target)).read_text(encoding="utf-8").startswith("#EXTM3U")


@pytest.mark.parametrize("args", [("ls", "--limit"), ("search", "sun", "--limit"), ("export", "json", "--limit")])
def test_a_limit_past_what_sqlite_binds_is_a_usage_error(imported: Path, args: tuple[str, ...]) -> None:
    _clean(_archiver(imported, *args, str(2**63)), 2)
    assert json.loads(_clean(_archiver(imported, "ls", "--format", "json", "--limit", str(2**63 - 1)), 0).strip()
                      or "[]") == []  # stderr is empty: the largest limit is accepted


def test_minutes_past_floating_point_are_a_usage_error(imported: Path) -> None:
    err = _clean(_archiver(imported, "ls", "duration:" + "1" * 400 + ":00"), 2)
    assert "expected seconds or m:ss" in err


def _listed(library: Path, *terms: str) -> list[dict[str, object]]:
    result = _archiver(library, "ls", "--format", "json", *terms)
    _clean(result, 0)
    return json.loads(result.stdout or b"[]")


def test_more_terms_than_sqlite_nests_are_a_usage_error(imported: Path) -> None:
    from archiver.query import MAX_TERMS

    assert _listed(imported, *["^title:zzz"] * MAX_TERMS) == _listed(imported) != []
    err = _clean(_archiver(imported, "ls", *["^title:zzz"] * 1200), 2)
    assert err == f"error: too many query terms (1200); at most {MAX_TERMS}\n"


@pytest.mark.parametrize("term", ["created:9999-12", "created:9999", "created:2020..9999", "year:9999",
                                  "created:9999-12-31T23:59"])
def test_dates_in_the_last_year_are_periods_to_its_end(imported: Path, term: str) -> None:
    assert _listed(imported, term) == (_listed(imported) if term == "created:2020..9999" else [])


def test_export_writes_into_a_fifo_and_a_link_to_a_pipe_instead_of_replacing_them(
        imported: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    _clean(_archiver(imported, "export", "json", "-o", str(fifo)), 0)
    reader.join(timeout=60)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still the FIFO, not a file put in its place
    assert [row["clip_id"] for row in json.loads(received[0])]
    piped = _archiver(imported, "export", "json", "-o", "/dev/stdout")  # a link to this pipe
    _clean(piped, 0)
    assert json.loads(piped.stdout) == json.loads(received[0])


def test_export_still_refuses_a_link_to_a_regular_file_and_names_no_empty_file(imported: Path,
                                                                               tmp_path: Path) -> None:
    mine = tmp_path / "mine.m3u"
    mine.write_text("my own playlist\n", encoding="utf-8")
    (tmp_path / "link.m3u").symlink_to(mine)
    err = _clean(_archiver(imported, "export", "m3u", "-o", str(tmp_path / "link.m3u")), 1)
    assert "symbolic link" in err and mine.read_text(encoding="utf-8") == "my own playlist\n"
    err = _clean(_archiver(imported, "export", "m3u", "-o", ""), 2)
    assert "give a file name" in err


@pytest.mark.parametrize("args", [("ls", "--limit", "1"), ("ls", "--format", "json"), ("stats",), ("tasks",),
                                  ("search", "sun"), ("config",), ("export", "csv")])
def test_closed_standard_output_is_not_an_error_and_not_written_elsewhere(imported: Path,
                                                                          args: tuple[str, ...]) -> None:
    db = imported / "archiver.db"
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    _clean(_archiver(imported, *args, stdout=None, close_stdout=True), 0)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def _plant(db: Path, sql: str, *params: object) -> None:
    con = sqlite3.connect(db)
    with con:
        con.execute(sql, params)
    con.close()


def test_rows_another_tool_wrote_are_listed_not_fatal(imported: Path) -> None:
    """A time that is not a time is shown as stored; text that is not UTF-8 with U+FFFD."""
    db = imported / "archiver.db"
    clip = sqlite3.connect(db).execute("SELECT clip_id FROM clips WHERE clip_id LIKE '1dd08826%'").fetchone()[0]
    _plant(db, "UPDATE clips SET created_at = 'garbage', title = CAST(X'ff41fe' AS TEXT) WHERE clip_id = ?", clip)
    _plant(db, "UPDATE tasks SET created_at = '12345'")
    _plant(db, "INSERT INTO sync_runs (started_at, finished_at, tasks_polled, newly_succeeded, failed, clips_added, "
               "requests, errors, files_downloaded, bytes_downloaded) VALUES ('yesterday', 'later', 0, 0, 0, 0, 0, "
               "0, 0, 0)")
    for args in [("ls",), ("ls", "--format", "csv"), ("ls", "--sort", "title"), ("export", "m3u8"), ("stats",),
                 ("tasks",), ("show", clip), ("search", "sun")]:
        _clean(_archiver(imported, *args), 0)
    rows = json.loads(_clean_out(_archiver(imported, "ls", "--format", "json")))
    planted = next(r for r in rows if r["clip_id"] == clip)
    assert planted["created_at"] == "garbage" and planted["title"] == "\ufffdA\ufffd"
    shown = json.loads(_clean_out(_archiver(imported, "show", clip, "--format", "json")))
    assert shown["created_at"] == "garbage"


def _clean_out(result: subprocess.CompletedProcess[bytes]) -> str:
    _clean(result, 0)
    return result.stdout.decode("utf-8")


def test_an_exact_id_beats_prefixes_and_many_matches_stay_one_line(imported: Path) -> None:
    db = imported / "archiver.db"
    con = sqlite3.connect(db)
    columns = [r[1] for r in con.execute("PRAGMA table_info(tasks)") if r[1] not in ("id", "task_id")]
    with con:
        for n in range(60):  # more tasks with one prefix than any message should list
            con.execute(f"INSERT INTO tasks (task_id, {', '.join(columns)}) "
                        f"SELECT ?, {', '.join(columns)} FROM tasks LIMIT 1", (f"many-{n:03d}",))
        # a clip sorts after tasks: the exact id is not among the first 51 prefix matches
        pk = con.execute("SELECT id FROM clips WHERE clip_id LIKE '1dd08826%'").fetchone()[0]
        con.execute("UPDATE clips SET clip_id = 'many-0' WHERE id = ?", (pk,))
    con.close()
    with ReadDB(f"sqlite:///{db}") as store:
        assert resolve(store, "many-0") == ("clip", pk)  # exact, though 60 task ids start with it
    err = _clean(_archiver(imported, "show", "many-"), 2)
    assert err.count("\n") == 1 and "matches more than 50 tasks/clips" in err and "and more than 45 more" in err


def test_a_database_url_of_another_kind_is_refused_and_postgres_urls_get_psycopg(tmp_path: Path) -> None:
    err = _clean(_archiver(tmp_path, "--db", "mysql://user:hunter2@db/music", "ls"), 2)
    assert "unsupported database 'mysql'" in err and "hunter2" not in err
    for given in ("postgresql://u@h/db", "postgres://u@h/db", "postgresql+psycopg2://u@h/db"):
        config = load_config(config_file=None, overrides={"library": str(tmp_path), "db": given})
        assert config.db_url == "postgresql+psycopg://u@h/db"
    with pytest.raises(ConfigError):
        load_config(config_file=None, overrides={"library": str(tmp_path), "db": "foo://x"})


def test_a_clip_whose_task_row_is_gone_is_a_message(imported: Path) -> None:
    db = imported / "archiver.db"
    clip = sqlite3.connect(db).execute("SELECT clip_id FROM clips WHERE clip_id LIKE '1dd08826%'").fetchone()[0]
    _plant(db, "UPDATE clips SET task_pk = NULL WHERE clip_id = ?", clip)
    assert "task is missing" in _clean(_archiver(imported, "show", clip), 1)
    _clean(_archiver(imported, "ls"), 0)
    with ReadDB(f"sqlite:///{db}") as store:  # the web app's clip page: no page (404), not a 500
        assert exact_detail(store, "clip", "acedata", clip) is None


@pytest.mark.parametrize("args", [("retry",), ("retag",)])
def test_a_mistyped_library_is_an_error_and_makes_nothing(tmp_path: Path, args: tuple[str, ...]) -> None:
    """Commands that change an existing library (unlike `add` and `sync`, which start one)."""
    absent = tmp_path / "Musci"
    assert "no library" in _clean(_archiver(absent, *args), 1)
    assert not absent.exists()


def test_export_to_dev_stdout_redirected_to_a_file_writes_that_file(imported: Path, tmp_path: Path) -> None:
    """`-o /dev/stdout > list.m3u`: the shell's file is written through the descriptor, and a
    playlist's paths are absolute (a descriptor has no folder to be relative to)."""
    out = tmp_path / "list.m3u"
    with out.open("wb") as fh:
        _clean(_archiver(imported, "export", "m3u", "-o", "/dev/stdout", stdout=fh.fileno()), 0)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#EXTM3U" and lines[2] == str(imported / "acedata" / "Woke up.mp3")


def test_a_library_folder_named_with_bytes_that_are_not_utf8_is_read(imported: Path, tmp_path: Path) -> None:
    """Any bytes name a folder: the read-only URI percent-encodes the name's bytes."""
    odd = os.fsdecode(os.fsencode(tmp_path) + b"/m\xfcsic")
    os.rename(imported, odd)
    listed = _archiver(Path(odd), "ls", "--format", "json")
    assert json.loads(_clean_out(listed)) and "Woke up" in listed.stdout.decode("utf-8")


@pytest.mark.parametrize("args", [("ls",), ("show", "x"), ("retry",), ("retag",), ("sync", "--no-download")])
def test_a_database_that_is_missing_or_a_folder_is_named_alike_by_every_command(tmp_path: Path,
                                                                              args: tuple[str, ...]) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    err = _clean(_archiver(tmp_path, "--db", str(folder), *args), 1)
    assert err == (f"error: no library at {folder} (a folder, not a database file); check --library/--db, "
                   "or run `archiver sync` to start one\n")
    if args[0] != "sync":  # a sync starts a library where there is none
        missing = tmp_path / "typo" / "archiver.db"
        err = _clean(_archiver(tmp_path, "--db", str(missing), *args), 1)
        assert err.startswith(f"error: no library at {missing} (no such database file); ")


def test_export_never_replaces_the_database_or_an_archived_file(imported: Path) -> None:
    song = imported / AUDIO
    database = imported / "archiver.db"
    (imported / "link.csv").symlink_to("archiver.db")
    before = {path: path.read_bytes() for path in (song, database)}
    (imported / ".archiver.lock").write_bytes(b"")
    for target, what in ((database, "the library's database"), (song, "a file the library archived"),
                         (imported / "link.csv", "the library's database"),
                         (imported / ".archiver.lock", "a file archiver keeps in the library"),
                         (song.with_name(song.name + ".part"), "a temporary file of the library")):
        err = _clean(_archiver(imported, "export", "csv", "-o", str(target)), 2)
        assert err == f"error: refusing to write the export over {what}: {target}\n"
    assert {path: path.read_bytes() for path in before} == before
    for _ in range(2):  # a playlist of the library's own, in its folder, is written and replaced
        _clean(_archiver(imported, "export", "m3u", "-o", str(imported / "all.m3u")), 0)
    assert (imported / "all.m3u").read_text(encoding="utf-8").splitlines()[-1] == AUDIO


def test_searches_and_terms_past_their_bounds_are_usage_errors(imported: Path) -> None:
    from archiver.query import MAX_SEARCH_WORDS, MAX_TERM_CHARS

    err = _clean(_archiver(imported, "search", *["rain"] * (MAX_SEARCH_WORDS + 1)), 2)
    assert err == f"error: too many words to search for ({MAX_SEARCH_WORDS + 1}); at most {MAX_SEARCH_WORDS}\n"
    _clean(_archiver(imported, "search", *["rain"] * MAX_SEARCH_WORDS), 0)
    err = _clean(_archiver(imported, "ls", "x" * 60_000), 2)
    assert err == f"error: a query term is longer than {MAX_TERM_CHARS} characters\n"
    assert _listed(imported, "^" + "x" * (MAX_TERM_CHARS - 1)) == _listed(imported)
