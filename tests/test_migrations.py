"""Schema migrations: a version-1 library is moved forward in place, without losing rows."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from archiver.errors import DatabaseError
from archiver.library import list_clips, search
from archiver.migrations import SCHEMA_VERSION, STEPS, current_version, migrate
from archiver.records import ClipRecord, Status, TaskRecord
from archiver.store import Store

V1_ROWS = """
INSERT INTO tasks (id, source, task_id, status, polls, idle_polls, poll_errors, created_at)
    VALUES (1, 'acedata', 'old-task', 'succeeded', 3, 0, 0, '2025-05-01T10:00:00.000000+00:00'),
           (2, 'mountsea', 'old-failed', 'failed', 1, 0, 0, NULL);
INSERT INTO clips (id, source, clip_id, task_pk, title, tags, lyrics, duration, model, created_at)
    VALUES (1, 'acedata', 'old-clip-1', 1, 'Paper Moons', 'dream pop', 'the albatross sings at dawn', 150.5,
            'FUZZ-2.0', '2025-05-01T10:00:01.000000+00:00'),
           (2, 'acedata', 'old-clip-2', 1, 'Glass River', 'folk', 'quiet water', 99.0,
            'FUZZ-2.0', '2025-05-01T10:00:02.000000+00:00');
INSERT INTO assets (clip_pk, kind, url, path, size, sha256, state, attempts, tagged)
    VALUES (1, 'audio', 'https://x/1.mp3', 'acedata/2025/Paper Moons.mp3', 1234, 'ab', 'downloaded', 1, 1),
           (1, 'image', 'https://x/1.jpg', NULL, NULL, NULL, 'failed', 3, 0),
           (2, 'audio', 'https://x/2.mp3', NULL, NULL, NULL, 'pending', 0, 0);
"""


def make_v1(path: Path) -> str:
    """A library exactly as schema version 1 left it, with rows in it."""
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    with engine.begin() as conn:
        STEPS[0](conn)
        conn.execute(text("PRAGMA user_version = 1"))
    engine.dispose()
    con = sqlite3.connect(path)
    con.executescript(V1_ROWS)
    con.close()
    return url


def objects(path: Path) -> dict[str, str]:
    con = sqlite3.connect(path)
    try:
        return {name: kind for name, kind in con.execute("SELECT name, type FROM sqlite_master")}
    finally:
        con.close()


def test_version_1_library_is_upgraded_in_place(tmp_path: Path) -> None:
    db = tmp_path / "archiver.db"
    url = make_v1(db)
    assert "clips_fts" not in objects(db)
    with Store(url) as store:
        assert store.execute("PRAGMA user_version")[0][0] == SCHEMA_VERSION >= 2
        assert [tuple(r) for r in store.execute("SELECT task_id, status FROM tasks ORDER BY id")] == [
            ("old-task", "succeeded"), ("old-failed", "failed")]
        rows = {r["clip_id"]: r for r in list_clips(store)}
        assert set(rows) == {"old-clip-1", "old-clip-2"}
        assert rows["old-clip-1"]["audio_path"] == "acedata/2025/Paper Moons.mp3"
        assert rows["old-clip-1"]["created_at"] == "2025-05-01T10:00:01Z"
        # the index was rebuilt from rows written before it existed
        assert [r["clip_id"] for r in search(store, "albatross")] == ["old-clip-1"]
        tracks = store.execute("SELECT clip_id, status, audio_path, audio_size, audio_sha256, image_path "
                               "FROM tracks ORDER BY clip_id")
        assert [tuple(r) for r in tracks] == [
            ("old-clip-1", "succeeded", "acedata/2025/Paper Moons.mp3", 1234, "ab", None),
            ("old-clip-2", "succeeded", None, None, None, None)]
        summary = store.execute("SELECT task_id, clips, duration, files_downloaded, files_pending, files_failed, "
                                "bytes FROM task_summary ORDER BY task_id")
        assert [tuple(r) for r in summary] == [("old-failed", 0, None, 0, 0, 0, 0),
                                               ("old-task", 2, 249.5, 1, 1, 1, 1234)]
        # and it stays in step with writes made after the upgrade
        store.apply([TaskRecord("acedata", "old-task", Status.SUCCEEDED, clips=(
            ClipRecord("old-clip-2", lyrics="a pelican at noon"),
            ClipRecord("new-clip", title="Albatross Returns",
                       created_at=datetime(2026, 1, 1, tzinfo=timezone.utc)))),
        ])
        assert [r["clip_id"] for r in search(store, "albatross")] == ["new-clip", "old-clip-1"]
        assert [r["clip_id"] for r in search(store, "pelican")] == ["old-clip-2"]
        assert search(store, "quiet") == []
    kinds = objects(db)
    assert kinds["clips_fts"] == "table" and kinds["tracks"] == "view" and kinds["task_summary"] == "view"
    assert {"clips_fts_insert", "clips_fts_update", "clips_fts_delete"} <= {k for k, v in kinds.items() if v == "trigger"}
    assert kinds["ix_clips_duration"] == "index"


def test_every_change_to_a_recorded_path_is_counted(tmp_path: Path) -> None:
    """Version 7's count, which an idle sync compares instead of reading every path, moves with
    each path an asset gains, changes or loses (cascading deletes included) and nothing else."""
    db = tmp_path / "archiver.db"
    url = make_v1(db)
    with Store(url):
        pass
    con = sqlite3.connect(db)
    con.execute("PRAGMA foreign_keys = ON")

    def count() -> int:
        return con.execute("SELECT changes FROM path_changes").fetchone()[0]

    generation = con.execute("SELECT generation FROM path_changes").fetchone()[0]
    assert count() == 0 and len(generation) == 32
    with con:
        con.execute("UPDATE assets SET attempts = 9, size = 1 WHERE path IS NOT NULL")  # not a path
        con.execute("UPDATE assets SET path = path WHERE path IS NOT NULL")  # the same path
        con.execute("INSERT INTO assets (clip_pk, kind, url, state, attempts, tagged) "
                    "VALUES (2, 'image', 'https://x/2.jpg', 'pending', 0, 0)")  # no path yet
    assert count() == 0
    with con:
        con.execute("UPDATE assets SET path = 'acedata/2.jpg' WHERE url = 'https://x/2.jpg'")
    assert count() == 1
    with con:
        con.execute("UPDATE assets SET path = 'acedata/Moons.mp3' WHERE path = 'acedata/2025/Paper Moons.mp3'")
    assert count() == 2
    with con:
        con.execute("INSERT INTO assets (clip_pk, kind, url, path, state, attempts, tagged) "
                    "VALUES (1, 'video', 'https://x/1.mp4', 'acedata/1.mp4', 'downloaded', 1, 0)")
    assert count() == 3
    with con:  # the cover's row takes the audio's key: SQLite drops the audio's row, firing no delete trigger
        con.execute("UPDATE OR REPLACE assets SET kind = 'audio' WHERE url = 'https://x/1.jpg'")
    assert count() == 4 and con.execute("SELECT count(*) FROM assets WHERE path = 'acedata/Moons.mp3'").fetchone()[0] == 0
    with con:
        con.execute("DELETE FROM tasks WHERE task_id = 'old-task'")  # its clips and their two paths go
    assert count() == 6
    assert con.execute("SELECT generation FROM path_changes").fetchone()[0] == generation
    con.close()


def test_fresh_library_gets_every_step(tmp_path: Path) -> None:
    db = tmp_path / "new" / "archiver.db"
    with Store(f"sqlite:///{db}") as store:
        assert store.execute("PRAGMA user_version")[0][0] == SCHEMA_VERSION == len(STEPS)
        assert store.execute("SELECT COUNT(*) FROM tracks")[0][0] == 0
    assert {"tasks", "clips", "assets", "sync_runs", "clips_fts", "tracks", "task_summary"} <= set(objects(db))


def test_reopening_does_not_migrate_again(tmp_path: Path) -> None:
    url = make_v1(tmp_path / "archiver.db")
    engine = create_engine(url)
    try:
        assert migrate(engine) == 1
        assert migrate(engine) == SCHEMA_VERSION
        with engine.connect() as conn:
            assert current_version(conn) == SCHEMA_VERSION
    finally:
        engine.dispose()


def test_browse_step_can_run_again_after_an_interruption(tmp_path: Path) -> None:
    """If a crash lands between the step and the version bump, running it again is harmless."""
    url = make_v1(tmp_path / "archiver.db")
    engine = create_engine(url)
    try:
        for _ in range(2):
            with engine.begin() as conn:
                STEPS[1](conn)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO clips_fts(clips_fts) VALUES ('integrity-check')"))
            hits = conn.execute(text("SELECT rowid FROM clips_fts WHERE clips_fts MATCH 'albatross'")).all()
            assert [tuple(h) for h in hits] == [(1,)]
    finally:
        engine.dispose()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "archiver.db"
    url = make_v1(db)
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(DatabaseError, match="newer than this archiver"):
        Store(url)
    con = sqlite3.connect(db)  # and nothing was touched
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    assert con.execute("SELECT COUNT(*) FROM clips").fetchone()[0] == 2
    con.close()


def test_newer_schema_is_a_clean_cli_error(run_cli, library: Path) -> None:
    make_v1(library / "archiver.db")
    con = sqlite3.connect(library / "archiver.db")
    con.execute("PRAGMA user_version = 99")
    con.close()
    result = run_cli("ls")
    assert result.exit_code == 1 and "newer than this archiver" in result.output
    assert "Traceback" not in result.output


V3_UNDATED = """
INSERT INTO tasks (id, source, task_id, status, polls, idle_polls, poll_errors, created_at, finished_at, first_seen)
    VALUES (1, 'mountsea', 'made', 'succeeded', 1, 0, 0, '2025-03-01T10:00:00.000000+00:00',
            '2025-03-02T10:00:00.000000+00:00', '2025-03-09T10:00:00.000000+00:00'),
           (2, 'mountsea', 'ended', 'succeeded', 1, 0, 0, NULL, '2025-04-02T10:00:00.000000+00:00', NULL),
           (3, 'mountsea', 'bare', 'running', 1, 0, 0, NULL, NULL, '2025-05-09T10:00:00.000000+00:00'),
           (4, 'acedata', 'own', 'succeeded', 1, 0, 0, '2025-03-01T10:00:00.000000+00:00', NULL, NULL);
INSERT INTO clips (id, source, clip_id, task_pk, title, created_at, first_seen)
    VALUES (1, 'mountsea', 'c-made', 1, 'Made', NULL, '2025-03-09T10:00:00.000000+00:00'),
           (2, 'mountsea', 'c-ended', 2, 'Ended', NULL, '2025-04-09T10:00:00.000000+00:00'),
           (3, 'mountsea', 'c-seen', 3, 'Seen', NULL, '2025-05-10T10:00:00.000000+00:00'),
           (4, 'mountsea', 'c-task-seen', 3, 'Task seen', NULL, NULL),
           (5, 'acedata', 'c-own', 4, 'Own', '2024-12-31T23:00:00.000000+00:00', NULL);
"""


def test_version_3_clips_without_a_time_get_one_once(tmp_path: Path) -> None:
    db = tmp_path / "archiver.db"
    url = f"sqlite:///{db}"
    engine = create_engine(url)
    with engine.begin() as conn:
        for step in STEPS[:3]:
            step(conn)
        conn.execute(text("PRAGMA user_version = 3"))
    engine.dispose()
    con = sqlite3.connect(db)
    con.executescript(V3_UNDATED)
    con.close()
    with Store(url) as store:
        created = dict(store.execute("SELECT clip_id, created_at FROM clips"))
        assert created == {"c-made": "2025-03-01T10:00:00.000000+00:00", "c-ended": "2025-04-02T10:00:00.000000+00:00",
                           "c-seen": "2025-05-10T10:00:00.000000+00:00",
                           "c-task-seen": "2025-05-09T10:00:00.000000+00:00",
                           "c-own": "2024-12-31T23:00:00.000000+00:00"}
        assert [r["clip_id"] for r in list_clips(store, ["year:2025"])] == ["c-made", "c-ended", "c-task-seen",
                                                                         "c-seen"]
    engine = create_engine(url)  # running the step again (an interrupted upgrade) changes nothing
    try:
        with engine.begin() as conn:
            STEPS[3](conn)
            again = dict(conn.execute(text("SELECT clip_id, created_at FROM clips")).all())
        assert again == created
    finally:
        engine.dispose()
