"""Issue #12, classes 5, 10, 11 and 12: the state the library keeps is true and kept safely.

Not-found is not forever (5); read commands never write, and a mistyped path is not a new
library (10); interrupted runs are recorded as interrupted (11); a clip id shared by two tasks is
reported, never moved; `add` of 100,000 ids is quick; concurrent first runs create the schema
once (12). On both engines: the catalog is read and staged through testkit.Catalog.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from itertools import count
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import Result
from conftest import sync_json
from archiver.testkit import Catalog, Lib, base_env, spawn

from archiver.migrations import SCHEMA_VERSION
from archiver.records import ClipRecord, PollOutcome, Status, TaskRecord
from archiver.simulator import Simulator
from archiver.store import NOT_FOUND_AFTER, NOT_FOUND_POLLS, Store

READ_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("ls",), ("ls", "--format", "json"), ("stats",), ("stats", "--format", "json"), ("tasks",),
    ("search", "love"), ("export", "json"), ("export", "m3u"), ("verify",),
)


def tasks_by_id(cli: Callable[..., Result]) -> dict[str, dict[str, Any]]:
    return {t["task_id"]: t for t in json.loads(cli("tasks", "--format", "json").output)}


def set_not_found_since(catalog: Catalog, when: datetime) -> None:
    catalog.execute("UPDATE tasks SET not_found_since = ?", when.isoformat(timespec="microseconds"))


@pytest.fixture
def new_catalog(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], str]:
    """URLs of new catalogs holding the schema and no rows: SQLite files, or PostgreSQL databases."""
    numbers = count()

    def make() -> str:
        if engine == "postgresql":
            return str(request.getfixturevalue("pg_cluster").database())
        return f"sqlite:///{tmp_path / f'store-{next(numbers)}.db'}"

    return make


def schema_version(catalog: Catalog) -> int:
    if catalog.postgres:
        return int(catalog.rows("SELECT version FROM archiver_schema")[0][0])
    return int(catalog.rows("PRAGMA user_version")[0][0])


# ------------------------------------------------------------------ 5: not-found is not forever


@pytest.mark.parametrize("source", ["acedata", "ccapi-suno"])  # one id per request; a batch endpoint
def test_not_found_fails_the_run_and_is_kept_pending_for_a_week(sim, sim_cli, catalog: Catalog, source: str) -> None:
    sim_cli("add", source, "typo-id")
    for _ in range(NOT_FOUND_POLLS + 2):
        code, summary = sync_json(sim_cli, "--no-download", "--now")
        assert code == 1 and any("typo-id" in e for e in summary["errors"]), summary
    task = tasks_by_id(sim_cli)["typo-id"]
    assert task["status"] == "pending" and task["error"]  # many polls, but not for a week: not given up

    set_not_found_since(catalog, datetime.now(timezone.utc) - NOT_FOUND_AFTER - timedelta(hours=1))
    code, summary = sync_json(sim_cli, "--no-download", "--now")
    assert code == 0 and summary["failed"] == 1, summary
    task = tasks_by_id(sim_cli)["typo-id"]
    assert task["status"] == "failed" and task["provider_status"] == "NOT_FOUND"


def test_a_week_without_several_polls_is_not_enough(new_catalog: Callable[[], str]) -> None:
    """One 404 after a long silence (a laptop that slept for a week) does not end a task."""
    now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    url = new_catalog()
    with Store(url) as store:
        store.add_tasks("acedata", ["t1"], now=now - timedelta(days=30))
        set_not_found_since(Catalog(url), now - timedelta(days=30))
        given_up = store.schedule("acedata", {"t1": PollOutcome.not_found("gone")}, 1.0, 60.0, now, changed=set())
        assert given_up == set()
        assert store.execute("SELECT status FROM tasks")[0][0] == "pending"
        for poll in range(1, NOT_FOUND_POLLS):
            given_up = store.schedule("acedata", {"t1": PollOutcome.not_found("gone")}, 1.0, 60.0,
                                      now + timedelta(minutes=poll), changed=set())
        assert given_up == {"t1"}
        assert tuple(store.execute("SELECT status, provider_status FROM tasks")[0]) == ("failed", "NOT_FOUND")


def test_a_found_answer_restarts_the_not_found_clock(new_catalog: Callable[[], str]) -> None:
    now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    with Store(new_catalog()) as store:
        store.add_tasks("acedata", ["t1"], now=now)
        for day in range(3):  # an outage: not found on three days
            store.schedule("acedata", {"t1": PollOutcome.not_found("x")}, 1.0, 60.0, now + timedelta(days=day), changed=set())
        store.schedule("acedata", {"t1": PollOutcome.ok()}, 1.0, 60.0, now + timedelta(days=4), changed=set())
        assert store.execute("SELECT not_found_since, poll_errors FROM tasks")[0] == (None, 0)
        for day in range(5, 5 + NOT_FOUND_POLLS):  # a new outage, days later: counted from its start
            store.schedule("acedata", {"t1": PollOutcome.not_found("x")}, 1.0, 60.0, now + timedelta(days=day), changed=set())
        assert store.execute("SELECT status FROM tasks")[0][0] == "pending"


def make_failed(catalog: Catalog, task_ids: list[str]) -> None:
    catalog.executemany("UPDATE tasks SET status = 'failed', provider_status = 'NOT_FOUND', error = 'gone', "
                        "poll_errors = 9, not_found_since = '2000-01-01T00:00:00.000000+00:00', "
                        "next_poll_at = '2999-01-01T00:00:00.000000+00:00' WHERE task_id = ?",
                        [(t,) for t in task_ids])


def test_add_of_a_known_failed_task_queues_it_again(run_cli, catalog: Catalog) -> None:
    assert run_cli("add", "acedata", "t1", "t2", "t3").exit_code == 0
    make_failed(catalog, ["t1", "t2"])
    result = run_cli("add", "acedata", "t1", "t3", "t4")
    assert result.exit_code == 0
    assert "1 new task(s)" in result.output and "1 failed task(s) queued again" in result.output
    assert "1 already known" in result.output
    rows = {r[0]: r[1:] for r in catalog.rows("SELECT task_id, status, provider_status, error, poll_errors, "
                                              "not_found_since, next_poll_at FROM tasks")}
    status, provider_status, error, poll_errors, since, next_poll = rows["t1"]
    assert (status, provider_status, error, poll_errors, since) == ("pending", None, None, 0, None)
    assert datetime.fromisoformat(next_poll) <= datetime.now(timezone.utc)
    assert rows["t2"][0] == "failed"  # not named: left alone


def test_retry_queues_failed_tasks_chosen_by_query(run_cli, catalog: Catalog, db_url: str) -> None:
    run_cli("add", "acedata", "ace-1", "ace-2")
    run_cli("add", "mountsea", "mount-1", "mount-ok")
    with Store(db_url) as store:  # a failed task with clips, too
        store.apply([TaskRecord("mountsea", "mount-1", Status.FAILED, error="blocked",
                                clips=(ClipRecord("c-1", title="Rain Song"),))])
    make_failed(catalog, ["ace-1", "ace-2"])

    def statuses() -> dict[str, str]:
        return {k: v["status"] for k, v in tasks_by_id(run_cli).items()}

    result = run_cli("retry", "source:acedata", "task:ace-2")
    assert result.exit_code == 0 and "1 failed task(s) queued again" in result.output
    assert statuses() == {"ace-1": "failed", "ace-2": "pending", "mount-1": "failed", "mount-ok": "pending"}
    assert "1 failed task(s)" in run_cli("retry", "rain").output  # a clip field, for a task with clips
    assert statuses()["mount-1"] == "pending"
    result = run_cli("retry")
    assert result.exit_code == 0 and "1 failed task(s) queued again" in result.output
    assert set(statuses().values()) == {"pending"}
    assert "0 failed task(s)" in run_cli("retry").output
    assert run_cli("retry", "nosuchfield:x").exit_code == 2
    help_text = run_cli("retry", "--help").output
    assert "Example" in help_text and "archiver retry source:" in help_text


@pytest.mark.parametrize("content", ["archiver.db", "song.mp3"])
def test_demo_refuses_a_folder_that_is_not_empty(tmp_path: Path, run_cli, content: str) -> None:
    target = tmp_path / "lib"
    target.mkdir()
    (target / content).write_bytes(b"precious")
    result = run_cli("demo", "--dir", str(target))
    assert result.exit_code == 2 and "not empty" in result.output
    assert [p.name for p in target.iterdir()] == [content] and (target / content).read_bytes() == b"precious"


# ------------------------------------------------------------------ 10: read commands don't write


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes | None]]:
    """Every path under root with its mode, mtime and (for files) bytes."""
    out = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        out[str(path.relative_to(root))] = (info.st_mode, info.st_mtime_ns,
                                            path.read_bytes() if path.is_file() else None)
    return out


def sync_small_library(where: Path, db_url: str | None = None) -> Path:
    """A small real library synced from the simulator, cleanly closed; its folder."""
    with Simulator() as sim:
        lib = Lib.create(sim, where, db_url=db_url)
        for source in ("acedata", "mountsea"):
            lib.cli("add", source, sim.add_task(source, steps=0))
        code, _summary = lib.sync()
        assert code == 0
    assert not list(lib.root.glob("archiver.db-*"))
    return lib.root


@pytest.fixture(scope="module")
def synced_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SQLite one, synced once for the module and copied by each test."""
    return sync_small_library(tmp_path_factory.mktemp("synced"))


@pytest.fixture
def synced(engine: str, library: Path, tmp_path: Path, pg_catalog: str | None,
           request: pytest.FixtureRequest) -> Path:
    """The test's library, synced: a copy of the module's SQLite one, or on PostgreSQL a sync into
    the test's own catalog (the folder holds the files only)."""
    if engine == "postgresql":
        return sync_small_library(tmp_path, pg_catalog)
    shutil.rmtree(library)
    shutil.copytree(request.getfixturevalue("synced_library"), library)
    return library


def written(library: Path, catalog: Catalog) -> tuple[Any, ...]:
    """What a write would change: every path of the library and, on PostgreSQL, every catalog row
    (an SQLite catalog is a file of the library; reading it here could add its -wal and -shm)."""
    return snapshot(library), catalog.text() if catalog.postgres else None


def test_read_commands_write_nothing(synced: Path, run_cli, library: Path, catalog: Catalog) -> None:
    before = written(library, catalog)
    clip = json.loads(run_cli("ls", "--format", "json").output)[0]
    for args in (*READ_COMMANDS, ("show", clip["clip_id"]), ("show", clip["task_id"])):
        result = run_cli(*args)
        assert result.exit_code == 0, (args, result.output)
        assert written(library, catalog) == before, args  # no -wal/-shm, no folder, not one byte or mtime


@pytest.mark.sqlite_only(reason="SQLite's WAL: a reader beside an open writer must not touch -wal/-shm")
def test_read_commands_beside_an_open_writer_write_nothing(synced_library: Path, run_cli, library: Path) -> None:
    """With a sync's connection open (-wal and -shm exist), readers see its committed rows."""
    shutil.rmtree(library)
    shutil.copytree(synced_library, library)
    writer = sqlite3.connect(library / "archiver.db")
    try:
        writer.execute("PRAGMA journal_mode = WAL")
        with writer:
            writer.execute("UPDATE clips SET title = 'Written Meanwhile' WHERE id = 1")
        main_db = (library / "archiver.db").read_bytes()
        names = set(os.listdir(library))
        result = run_cli("ls", "title:meanwhile", "--format", "json")
        assert result.exit_code == 0 and len(json.loads(result.output)) == 1, result.output
        for args in READ_COMMANDS:
            assert run_cli(*args).exit_code == 0, args
        assert (library / "archiver.db").read_bytes() == main_db and set(os.listdir(library)) == names
    finally:
        writer.close()


def run_unprivileged(args: list[str], env: dict[str, str], *, module: bool = True) -> subprocess.CompletedProcess[str]:
    """`python -m archiver ARGS` (or `python ARGS`) where permissions really bind: as root, with
    every capability dropped (so a file without write permission cannot be written)."""
    command = [sys.executable, *(["-m", "archiver"] if module else []), *args]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot make the library really read-only")
        command = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_read_commands_work_on_a_read_only_library(synced: Path, tmp_path: Path, pg_catalog: str | None) -> None:
    library = synced
    env = base_env() | {"ARCHIVER_LIBRARY": str(library), "XDG_CONFIG_HOME": str(tmp_path / "none"),
                        "HOME": str(tmp_path / "home")} | ({"ARCHIVER_DB": pg_catalog} if pg_catalog else {})
    for path in [library, *library.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        probe = run_unprivileged(["-c", f"open({str(library / 'probe')!r}, 'w')"], env, module=False)
        if probe.returncode == 0:
            pytest.skip("the read-only library is writable here (capabilities could not be dropped)")
        before = snapshot(library)
        clip_id = json.loads(run_unprivileged(["ls", "--format", "json"], env).stdout)[0]["clip_id"]
        for args in (*READ_COMMANDS, ("show", clip_id)):
            result = run_unprivileged(list(args), env)
            assert result.returncode == 0, (args, result.stderr)
            assert "Traceback" not in result.stderr
        assert snapshot(library) == before
    finally:
        for path in [library, *library.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)


@pytest.mark.sqlite_only(reason="the path of an SQLite library or file; a PostgreSQL catalog is named by a URL")
@pytest.mark.parametrize("option", ["--library", "--db"])
def test_a_mistyped_path_is_no_library_and_creates_nothing(tmp_path: Path, option: str) -> None:
    from click.testing import CliRunner

    from archiver.cli import cli

    where = tmp_path / "typo" / "libary"
    target = str(where if option == "--library" else where / "archiver.db")
    for args in (*READ_COMMANDS, ("show", "x")):
        result = CliRunner().invoke(cli, [option, target, *args], catch_exceptions=False)
        assert result.exit_code == 1, (args, result.output)
        assert result.output.startswith("error: no library at ") and result.output.count("\n") == 1, result.output
    assert not (tmp_path / "typo").exists()


@pytest.mark.sqlite_only(reason="an empty SQLite file is not a library; PostgreSQL has no such file")
def test_an_empty_database_file_is_no_library_either(run_cli, library: Path) -> None:
    (library / "archiver.db").write_bytes(b"")
    for args in READ_COMMANDS:
        result = run_cli(*args)
        assert result.exit_code == 1 and "no library at" in result.output, (args, result.output)
    assert os.listdir(library) == ["archiver.db"] and (library / "archiver.db").read_bytes() == b""


@pytest.fixture
def version_1_catalog(engine: str, library: Path, monkeypatch: pytest.MonkeyPatch,
                      request: pytest.FixtureRequest) -> Catalog:
    """The test library's catalog as schema version 1 left it: the SQLite file, or a PostgreSQL
    database at version 1 that ARCHIVER_DB now names."""
    if engine == "sqlite":
        from test_migrations import make_v1

        return Catalog(make_v1(library / "archiver.db"))
    from sqlalchemy import create_engine

    from archiver import migrations

    url = str(request.getfixturevalue("pg_cluster").empty_database())
    pg = create_engine(url)
    with pg.begin() as conn:
        migrations.STEPS[0](conn)
        migrations._set_version(conn, 1)
    pg.dispose()
    monkeypatch.setenv("ARCHIVER_DB", url)
    return Catalog(url)


def test_read_commands_do_not_migrate_an_old_schema(run_cli, library: Path, version_1_catalog: Catalog) -> None:
    before = written(library, version_1_catalog)
    for args in READ_COMMANDS:
        result = run_cli(*args)
        assert result.exit_code == 1 and "older than this archiver" in result.output, (args, result.output)
        assert "archiver sync" in result.output
    assert written(library, version_1_catalog) == before
    assert run_cli("add", "acedata", "x").exit_code == 0  # a write command upgrades it
    assert schema_version(version_1_catalog) == SCHEMA_VERSION


# ------------------------------------------------------------------ 11: interrupted runs are recorded


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_sync_is_recorded_as_interrupted(tmp_path: Path, pg_catalog: str | None, sig: int,
                                                        code: int) -> None:
    with Simulator() as sim:
        lib = Lib.create(sim, tmp_path / "lib", "connect_timeout = 2\nread_timeout = 30\n", pg_catalog)
        assert lib.cli("add", "acedata", sim.add_task("acedata", steps=0)).exit_code == 0
        assert lib.sync(once=True)[0] == 0  # one clean run first: `stats` must show both
        lib.cli("add", "acedata", sim.add_task("acedata", steps=0))
        sim.inject("stall", target="api", delay=30.0)
        # A child inherits an ignored SIGINT (a test run started in the background by a
        # non-interactive shell); a handler here is the default one in the child.
        kept = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            proc = spawn(lib, "sync", "--now", "--quiet")
        finally:
            signal.signal(signal.SIGINT, kept)
        deadline = time.monotonic() + 30
        while sim._faults and time.monotonic() < deadline:  # the stalled request has arrived
            time.sleep(0.02)
        time.sleep(0.3)
        sent = time.monotonic()
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == code, err
        assert err.strip() == "interrupted"
        assert time.monotonic() - sent < 20  # it stopped for the signal, not at the end of the stall
    runs = lib.query("SELECT exit_code, error_text, finished_at FROM sync_runs ORDER BY id")
    assert [r["exit_code"] for r in runs] == [0, code]
    assert runs[1]["error_text"].startswith("interrupted") and runs[1]["finished_at"]
    stats = json.loads(lib.cli("stats", "--format", "json").output)
    assert stats["last_sync"]["exit_code"] == code and stats["last_sync"]["interrupted"]
    assert [r["exit_code"] for r in stats["recent_syncs"]] == [code, 0]
    text = lib.cli("stats").output
    assert f"exit {code}, 0 error(s), interrupted" in text and "earlier" in text


# ------------------------------------------------------------------ 12: smaller ones


def test_a_clip_listed_by_two_tasks_stays_with_the_first_and_is_reported(new_catalog: Callable[[], str]) -> None:
    first = TaskRecord("acedata", "task-a", Status.SUCCEEDED,
                       clips=(ClipRecord("shared", title="One", audio_url="https://x/a.mp3"),))
    second = TaskRecord("acedata", "task-b", Status.SUCCEEDED,
                        clips=(ClipRecord("shared", title="Other", audio_url="https://x/b.mp3"),
                               ClipRecord("own", title="Own")))
    for batch in (([first], [second]), ([first, second],)):  # two polls, or one batch
        with Store(new_catalog()) as store:
            results = [store.apply(records) for records in batch]
            warnings = [w for r in results for w in r.warnings]
            assert len(warnings) == 1 and "shared" in warnings[0] and "task-a" in warnings[0], warnings
            rows = store.execute("SELECT c.clip_id, t.task_id, c.title, a.url FROM clips c JOIN tasks t "
                                 "ON t.id = c.task_pk LEFT JOIN assets a ON a.clip_pk = c.id ORDER BY c.clip_id")
            assert [tuple(r) for r in rows] == [("own", "task-b", "Own", None),
                                                ("shared", "task-a", "One", "https://x/a.mp3")]


def test_sync_reports_a_clip_shared_by_two_tasks(sim, sim_cli, catalog: Catalog) -> None:
    first = sim.add_task("acedata", steps=0, clips=1)
    second = sim.add_task("acedata", steps=0, clips=1)
    shared = sim._tasks[("acedata", first)].clips[0]
    sim._tasks[("acedata", second)].clips[0].clip_id = shared.clip_id
    sim_cli("add", "acedata", first)
    sync_json(sim_cli, "--no-download", "--now")
    sim_cli("add", "acedata", second)
    result = sim_cli("sync", "--no-download", "--now")
    assert f"clip {shared.clip_id} of task {second}" in result.output and first in result.output
    owner = catalog.rows("SELECT t.task_id FROM clips c JOIN tasks t ON t.id = c.task_pk")
    assert owner == [(first,)]


def test_add_of_100000_ids_is_quick_and_small(tmp_path: Path, pg_catalog: str | None) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"task-{n:06d}\n" for n in range(100_000)), encoding="utf-8")
    env = base_env() | {"XDG_CONFIG_HOME": str(tmp_path / "none"), "HOME": str(tmp_path / "home")}
    catalog = Catalog.sqlite(tmp_path / "lib" / "archiver.db")
    if pg_catalog:
        env["ARCHIVER_DB"], catalog = pg_catalog, Catalog(pg_catalog)
    # A process's peak RSS counts the memory it had before exec: a child forked from this pytest
    # process (hundreds of MB late in a run) would report ours. A small Python in between forks
    # archiver and reports the peak of its own child (KiB on Linux).
    measure = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
               "print('maxrss', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)")
    for round_ in ("new", "known"):
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "archiver", "--library",
                               str(tmp_path / "lib"), "add", "acedata", "--file", str(ids)],
                              env=env, capture_output=True, text=True)
        elapsed = time.monotonic() - started
        out = proc.stdout
        assert proc.returncode == 0, proc.stderr
        assert ("100000 new task(s)" if round_ == "new" else "100000 already known") in out, out
        assert elapsed < 5.0, (round_, elapsed)
        maxrss = int(out.rsplit("maxrss ", 1)[1].split()[0])
        assert maxrss < 200 * 1024, (round_, maxrss)
    assert catalog.rows("SELECT COUNT(*), COUNT(DISTINCT task_id) FROM tasks") == [(100_000, 100_000)]


# PostgreSQL: adds and syncs together (its migrations are serialized by an advisory lock, and
# tests/test_postgres.py opens eight stores at once): one round of the mixed case.
@pytest.mark.parametrize("engine, second", [("sqlite", "add"), ("sqlite", "sync"), ("postgresql", "sync")],
                         indirect=["engine"])
def test_concurrent_first_runs_create_the_schema_once(tmp_path: Path, engine: str, second: str,
                                                      request: pytest.FixtureRequest) -> None:
    """Five processes on a new library at once: SQLite's file and PostgreSQL's empty database
    (migrations under an advisory lock) get the schema once. On SQLite a sync that finds another
    one running exits 75; on PostgreSQL workers share the catalog and every process ends with 0."""
    allowed = (0, 75) if engine == "sqlite" else (0,)
    env = base_env() | {"XDG_CONFIG_HOME": str(tmp_path / "none"), "HOME": str(tmp_path / "home")}
    failures = []
    for round_ in range(6 if engine == "sqlite" else 1):  # SQLite's race is in creating the file
        library = tmp_path / f"lib-{round_}"
        catalog = Catalog.sqlite(library / "archiver.db")
        if engine == "postgresql":
            catalog = Catalog(request.getfixturevalue("pg_cluster").empty_database())
            env["ARCHIVER_DB"] = catalog.url
        procs = []
        for n in range(5):
            args = ["add", "acedata", f"t{n}"] if second == "add" or n % 2 == 0 else ["sync", "--source", "mountsea"]
            procs.append(subprocess.Popen([sys.executable, "-m", "archiver", "--library", str(library), *args],
                                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for proc in procs:
            _out, err = proc.communicate(timeout=60)
            if proc.returncode not in allowed or "error" in err and "another archiver sync" not in err:
                failures.append((round_, proc.returncode, err))
        assert schema_version(catalog) == SCHEMA_VERSION
        added = {r[0] for r in catalog.rows("SELECT task_id FROM tasks")}
        assert added == {f"t{n}" for n in range(5) if second == "add" or n % 2 == 0}
    assert failures == []
