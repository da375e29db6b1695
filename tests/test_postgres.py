"""A PostgreSQL catalog: the schema and migrations, the views, text search by rank, the read path
without the ORM, and the URL's password in no output. Against a real server (conftest.pg_cluster)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import Result

from archiver.testkit.postgres import PASSWORD

ROOT = Path(__file__).resolve().parent.parent


def _rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    from archiver.pgdb import dsn

    with psycopg.connect(dsn(url)) as conn:
        return list(conn.execute(sql, params).fetchall())


def test_migrations_run_once_when_workers_start_together(pg_cluster: Any) -> None:
    """Eight stores opening an empty database at once: one migration, every step, no error."""
    from archiver.readdb import SCHEMA_VERSION
    from archiver.store import Store

    url = pg_cluster.empty_database()
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            Store(url).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _rows(url, "SELECT version FROM archiver_schema") == [(SCHEMA_VERSION,)]
    names = {name for (name,) in _rows(url, "SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'public'")}
    assert {"tasks", "clips", "assets", "sync_runs", "tracks", "task_summary"} <= names
    kinds = dict(_rows(url, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'clips'"))
    assert "gin" in kinds["ix_clips_search"].lower()


def test_views_and_search_rank_like_fts5(sim: Any, sim_cli: Callable[..., Result], engine: str) -> None:
    """The same catalog on both engines: a title hit ranks first, snippets mark the word."""
    ids = [sim.add_task("mountsea", steps=0) for _ in range(3)]
    assert sim_cli("add", "mountsea", *ids).exit_code == 0
    result = sim_cli("sync", "--now", "--until-done", "--interval", "0.05", "--timeout", "60")
    assert result.exit_code == 0, result.output
    titles = [line.split("\t")[2] for line in sim_cli("ls").output.splitlines()[1:]]
    word = next(w for t in titles for w in t.split() if len(w) > 3).lower()
    found = sim_cli("search", word, "--format", "json")
    assert found.exit_code == 0, found.output
    import json

    rows = json.loads(found.output)
    assert rows and word in (rows[0]["title"] or "").lower()
    assert "«" in rows[0]["snippet"] and "»" in rows[0]["snippet"]
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    prefix = sim_cli("search", word[:3] + "*", "--format", "json")
    assert {r["clip_id"] for r in json.loads(prefix.output)} >= {r["clip_id"] for r in rows}
    if engine == "postgresql":
        url = os.environ["ARCHIVER_DB"]
        summary = _rows(url, "SELECT clips, files_downloaded, files_pending FROM task_summary")
        assert summary and all(clips == 1 and done >= 1 and pending == 0 for clips, done, pending in summary)
        tracks = _rows(url, "SELECT audio_path, audio_tagged FROM tracks")
        assert len(tracks) == 3 and all(path and tagged for path, tagged in tracks)


def test_read_commands_import_no_sqlalchemy_on_postgres(pg_url: str, tmp_path: Path) -> None:
    from archiver.store import Store

    Store(pg_url).close()
    code = ("import sys, runpy; sys.argv = ['archiver', 'stats'];\n"
            "try:\n    runpy.run_module('archiver', run_name='__main__')\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported'")
    env = {**os.environ, "ARCHIVER_DB": pg_url, "ARCHIVER_LIBRARY": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("args", [("config",), ("search", "x"), ("add", "mountsea", "x1")])
def test_password_is_never_printed(pg_cluster: Any, tmp_path: Path, args: tuple[str, ...]) -> None:
    """Working, wrong password, unknown database: the password is in no output."""
    good = pg_cluster.database()
    urls = [good, good.replace(PASSWORD, PASSWORD + "x"), good.rsplit("/", 1)[0] + "/missing_db"]
    for url in urls:
        env = {**os.environ, "ARCHIVER_DB": url, "ARCHIVER_LIBRARY": str(tmp_path / "lib"),
               "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp_path)}
        done = subprocess.run([sys.executable, "-m", "archiver", *args], env=env, capture_output=True, text=True)
        output = done.stdout + done.stderr
        assert PASSWORD not in output, output
        assert "Traceback" not in output, output
        assert args != ("config",) or "<redacted>" in output
        if url != good and args != ("config",):  # config shows the URL without connecting
            assert done.returncode != 0 and "database error" in output, output


def test_an_older_catalog_is_migrated_in_place(pg_cluster: Any) -> None:
    """A catalog left at version 5 gains the fleet columns and tables; its rows stay."""
    from sqlalchemy import create_engine

    from archiver import migrations
    from archiver.readdb import SCHEMA_VERSION
    from archiver.store import Store

    url = pg_cluster.empty_database()
    engine = create_engine(url)
    with engine.begin() as conn:
        for step in migrations.STEPS[:5]:
            step(conn)
        migrations._set_version(conn, 5)
        conn.exec_driver_sql("INSERT INTO tasks (source, task_id, status, polls, idle_polls, poll_errors) "
                             "VALUES ('mountsea', 'kept', 'pending', 0, 0, 0)")
    engine.dispose()
    for column in ("claimed_by", "lease_until"):
        assert not _rows(url, f"SELECT 1 FROM information_schema.columns WHERE table_name = 'tasks' "
                              f"AND column_name = '{column}'")
    with Store(url) as store:
        assert store.add_tasks("mountsea", ["kept"]).known == 1
    assert _rows(url, "SELECT version FROM archiver_schema") == [(SCHEMA_VERSION,)]
    assert _rows(url, "SELECT task_id, claimed_by FROM tasks") == [("kept", None)]
    assert _rows(url, "SELECT COUNT(*) FROM workers") == [(0,)]


def test_provider_slots_and_retry_budget_hold_for_the_fleet(pg_url: str) -> None:
    """Two workers share a provider's 2 request slots and one retry budget of 3."""
    import asyncio

    from archiver.claims import Fleet, FleetBudget
    from archiver.store import Store

    with Store(pg_url) as store:
        one, two = Fleet(store.engine, "w1"), Fleet(store.engine, "w2")

        async def scenario() -> list[str]:
            events: list[str] = []
            async with one.slot("ccapi", 2), two.slot("ccapi", 2):
                waiting = asyncio.create_task(_take(two, events))
                await asyncio.sleep(0.3)
                events.append("released")
            await asyncio.wait_for(waiting, 10)
            return events

        assert asyncio.run(scenario()) == ["released", "third slot"]
        budgets = [FleetBudget(store.engine, 3), FleetBudget(store.engine, 3)]
        taken = [budgets[n % 2].take() for n in range(6)]
        assert taken == [True, True, True, False, False, False]


async def _take(fleet: Any, events: list[str]) -> None:
    async with fleet.slot("ccapi", 2):
        events.append("third slot")


def test_a_second_worker_of_the_same_name_exits_75(pg_url: str, tmp_path: Path) -> None:
    """Names tell the workers' claims apart: a live one's name is refused, a finished one's reused."""
    import psycopg

    from archiver.pgdb import dsn

    with psycopg.connect(dsn(pg_url)) as conn:
        conn.execute("INSERT INTO workers (name, host, pid, lease_until) VALUES ('nas-1', 'nas', 4711, '9999')")
    env = {**os.environ, "ARCHIVER_DB": pg_url, "ARCHIVER_LIBRARY": str(tmp_path / "lib"), "PYTHONPATH": str(ROOT),
           "XDG_CONFIG_HOME": str(tmp_path)}
    args = [sys.executable, "-m", "archiver", "sync", "--worker-id", "nas-1", "--no-download"]
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    assert done.returncode == 75 and "nas-1 is already running" in done.stderr, done.stderr
    with psycopg.connect(dsn(pg_url)) as conn:
        conn.execute("UPDATE workers SET finished_at = '2026-01-01', exit_code = 0")
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_both_engines_have_the_same_tables_columns_and_views(pg_url: str, tmp_path: Path) -> None:
    """The migrations are kept in step: a new catalog has what a new SQLite library has."""
    import sqlite3

    from archiver.store import Store

    Store(f"sqlite:///{tmp_path / 'a.db'}").close()
    con = sqlite3.connect(tmp_path / "a.db")
    names = [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                                       "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'clips_fts%' "
                                       "AND name <> 'path_changes'")]  # the idle check's, SQLite only
    lite = {n: {row[1] for row in con.execute(f"PRAGMA table_info({n})")} for n in names}
    con.close()
    pg: dict[str, set[str]] = {}
    for table, column in _rows(pg_url, "SELECT table_name, column_name FROM information_schema.columns "
                                       "WHERE table_schema = 'public' AND table_name <> 'archiver_schema'"):
        pg.setdefault(table, set()).add(column)
    pg["clips"].discard("search")  # PostgreSQL's text search column; SQLite has clips_fts instead
    assert pg == lite


def test_provider_text_with_nul_is_stored_and_found_again(pg_url: str) -> None:
    """PostgreSQL text holds no NUL: it is stored as U+FFFD, and a task or clip id with one still upserts."""
    from archiver.records import ClipRecord, Status, TaskRecord
    from archiver.store import Store

    record = TaskRecord(source="acedata", task_id="t\x001", status=Status.SUCCEEDED, error="bad\x00byte",
                        clips=(ClipRecord(clip_id="c\x001", title="a\x00b", lyrics="x\x00y"),))
    with Store(pg_url) as store:
        first = store.apply([record])
        again = store.apply([record])
    assert (first.tasks_added, first.clips_added, again.tasks_added, again.clips_added) == (1, 1, 0, 0)
    assert _rows(pg_url, "SELECT clip_id, title, lyrics FROM clips") == [("c\ufffd1", "a\ufffdb", "x\ufffdy")]
    assert _rows(pg_url, "SELECT task_id, error FROM tasks") == [("t\ufffd1", "bad\ufffdbyte")]


def test_repair_and_retag_wait_for_the_fleet_to_stop(pg_url: str, tmp_path: Path, sim: Any) -> None:
    """`verify --repair` and `retag` rewrite files without claims: while a worker is live they exit 75."""
    import psycopg

    from archiver.pgdb import dsn

    library = tmp_path / "lib"
    env = {**os.environ, **sim.env(), "ARCHIVER_DB": pg_url, "ARCHIVER_LIBRARY": str(library),
           "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp_path)}

    def archiver(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "archiver", *args], env=env, capture_output=True, text=True,
                              timeout=120)

    task = sim.add_task("acedata", clips=1, steps=0)
    assert archiver("add", "acedata", task).returncode == 0
    assert archiver("sync", "--until-done", "--timeout", "60", "--quiet").returncode == 0
    (audio,) = [p for p in library.rglob("*") if p.suffix in (".mp3", ".m4a")]
    audio.unlink()
    with psycopg.connect(dsn(pg_url)) as conn:
        conn.execute("INSERT INTO workers (name, host, pid, lease_until) VALUES ('nas-2', 'nas', 4711, '9999')")
    for args in (("verify", "--repair"), ("retag",)):
        done = archiver(*args)
        assert done.returncode == 75 and "stop them before" in done.stderr and "nas-2" in done.stderr, done.stderr
    assert not audio.exists()
    with psycopg.connect(dsn(pg_url)) as conn:
        conn.execute("UPDATE workers SET finished_at = '2026-01-01', exit_code = 0")
    done = archiver("verify", "--repair")
    assert done.returncode == 0 and audio.exists(), done.stdout + done.stderr
    assert archiver("retag").returncode == 0


def test_two_adds_of_the_same_new_ids_at_once_both_succeed(db_url: str, engine: str) -> None:
    """Two `add`s of the same new ids racing on one catalog (two hosts, or two shells on one):
    each id is stored once, neither fails, and what they report adds up."""
    from archiver.store import Store

    ids = [f"task-{n:05d}" for n in range(20_000)]
    stores = [Store(db_url), Store(db_url)]
    start = threading.Barrier(2)
    results: list[Any] = []

    def add(store: Any) -> None:
        start.wait()
        try:
            results.append(store.add_tasks("acedata", ids))
        except Exception as exc:  # noqa: BLE001 - the failure is what the test reports
            results.append(exc)

    threads = [threading.Thread(target=add, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for store in stores:
        store.close()
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r.new for r in results) == len(ids)  # what each says it added adds up to what is there
    assert sum(r.known for r in results) == len(ids)
    with Store(db_url) as store, store.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*), count(DISTINCT task_id) FROM tasks").one() == (len(ids), len(ids))


def test_an_added_id_with_nul_is_stored_as_on_sqlite(pg_url: str) -> None:
    """Ids given to one statement as an array are cleaned of NUL like any other text."""
    from archiver.store import Store

    with Store(pg_url) as store:
        assert store.add_tasks("acedata", ["t\x00nul", "plain"]).new == 2
        assert store.add_tasks("acedata", ["t\x00nul"]).known == 1  # the same id, found again
    assert sorted(r[0] for r in _rows(pg_url, "SELECT task_id FROM tasks")) == ["plain", "t\ufffdnul"]
