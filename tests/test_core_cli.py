"""`archiver import`, `tasks` and `ls` through the real CLI, on the docs' example bodies."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from archiver.records import ClipRecord, Status, TaskRecord
from archiver.store import Store
from conftest import PAYLOADS

ALL = ["ccapi_producer_single.json", "ccapi_suno_batch.json", "mountsea_completed.json",
       "mountsea_schema.json", "acedata_single.json", "acedata_batch.json"]


def ls(run_cli) -> list[dict]:
    result = run_cli("ls", "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def tasks(run_cli) -> list[dict]:
    result = run_cli("tasks", "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_import_every_doc_example(run_cli) -> None:
    for name in ALL:
        result = run_cli("import", str(PAYLOADS / name))
        assert result.exit_code == 0, (name, result.output)
    result = run_cli("import", "--task-id", "aim-1", str(PAYLOADS / "aimusicapi_task.json"))
    assert result.exit_code == 0, result.output

    clips = {c["clip_id"]: c for c in ls(run_cli)}
    assert len(clips) == 4
    ace = clips["1dd08826-478e-43a6-868f-aff5ababac2c"]
    assert ace["duration"] == pytest.approx(135.2330158730159)
    assert ace["model"] == "FUZZ-2.0 Pro" and ace["seed"] == "1490770667"
    assert ace["lyrics"].startswith("[Verse]\nWoke up")
    assert ace["audio_path"] is None and ace["image_path"] is None
    suno = clips["07c958f3-8293-4a11-96d3-240dd62bbb31"]
    assert suno["title"] == "Soft Steps in the Sun" and suno["duration"] == pytest.approx(199.96)
    assert suno["created_at"] == "2026-03-13T07:13:16.900000Z"
    aim = clips["74dc7bf7-56bf-457c-a4a3-3fa12f05d727"]
    assert (aim["title"], aim["tags"], aim["task_id"]) == ("City Lights", "emotional pop with gentle piano", "aim-1")
    assert clips["9719e086-576a-4830-a0f2-7c9424460d6d"]["title"] == "Summer Vibes"

    by_id = {t["task_id"]: t for t in tasks(run_cli)}
    assert by_id["task_xoHpRiNr8KXFmmXLWkKczlSJwycIkD1X"]["status"] == "succeeded"
    assert by_id["task_xoHpRiNr8KXFmmXLWkKczlSJwycIkD1X"]["clips"] == 1
    assert by_id["task_BE5vsWPK0pWHyONbGVEXqsPqD6IkcBY6"]["status"] == "running"
    assert by_id["task_BE5vsWPK0pWHyONbGVEXqsPqD6IkcBY6"]["progress"] == 20
    assert by_id["task_BE5vsWPK0pWHyONbGVEXqsPqD6IkcBY6"]["provider_status"] == "IN_PROGRESS"
    assert by_id["aim-1"]["status"] == "succeeded"
    assert set(by_id["aim-1"]) >= {"source", "task_id", "status", "provider_status", "progress", "error", "clips"}


def test_reimport_is_idempotent(run_cli) -> None:
    first = run_cli("import", str(PAYLOADS / "acedata_single.json"))
    assert "tasks: 1 added" in first.output and "clips: 1 added" in first.output
    again = run_cli("import", str(PAYLOADS / "acedata_single.json"), str(PAYLOADS / "acedata_batch.json"))
    assert again.exit_code == 0
    assert "tasks: 0 added, 0 updated; clips: 0 added, 0 updated" in again.output
    assert len(ls(run_cli)) == 1 and len(tasks(run_cli)) == 1


def test_stdin_and_forced_source(run_cli) -> None:
    body = (PAYLOADS / "aimusicapi_task.json").read_text()
    missing = run_cli("import", "-", input=body)
    assert missing.exit_code != 0 and "--task-id" in missing.output
    ok = run_cli("import", "--source", "aimusicapi", "--task-id", "x1", "-", input=body)
    assert ok.exit_code == 0, ok.output
    assert ls(run_cli)[0]["task_id"] == "x1"


@pytest.mark.parametrize("body,needle", [
    ("{not json", "not valid JSON"),
    ('{"hello": "world"}', "cannot tell which source"),
    ('{"code": "success", "data": {"platform": "suno", "status": "SUCCESS"}}', "task_id"),
    ('{"success": false, "error": {"code": "api_error", "message": "fetch failed"}}', "fetch failed"),
])
def test_malformed_bodies_fail_cleanly(run_cli, body: str, needle: str) -> None:
    result = run_cli("import", "-", input=body)
    assert result.exit_code != 0
    assert needle in result.output
    assert "Traceback" not in result.output


def test_an_unrecognised_body_among_several_is_named(run_cli, tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text((PAYLOADS / "acedata_single.json").read_text())
    odd = tmp_path / "odd.json"
    odd.write_text('{"hello": "world"}')
    result = run_cli("import", str(good), str(odd))
    assert result.exit_code == 1
    assert result.output == f"error: {odd}: cannot tell which source this body is from; pass --source\n"
    assert ls(run_cli) == []  # all or nothing


def test_missing_file(run_cli, tmp_path: Path) -> None:
    result = run_cli("import", str(tmp_path / "nope.json"))
    assert result.exit_code == 2 and "nope.json" in result.output


def test_stale_payload_never_overwrites(library: Path) -> None:
    store = Store(f"sqlite:///{library}/archiver.db")
    from datetime import datetime, timezone

    t0, t1 = (datetime(2026, 1, 1, 0, m, tzinfo=timezone.utc) for m in (0, 5))
    clip = ClipRecord(clip_id="c1", title="Final", audio_url="https://x/c1.mp3")
    done = TaskRecord("ccapi-suno", "t1", Status.SUCCEEDED, "SUCCESS", 100, updated_at=t1, clips=(clip,))
    older = TaskRecord("ccapi-suno", "t1", Status.RUNNING, "IN_PROGRESS", 20, updated_at=t0)
    store.apply([done])
    result = store.apply([older])
    assert result.stale == 1 and result.tasks_updated == 0
    # a running record without timestamps after a finished one is stale too
    result = store.apply([TaskRecord("ccapi-suno", "t1", Status.RUNNING, "IN_PROGRESS", 50)])
    assert result.stale == 1
    row = store.execute("select status, progress, provider_status from tasks")[0]
    assert tuple(row) == ("succeeded", 100, "SUCCESS")
    store.close()


@pytest.mark.sqlite_only
def test_database_has_wal_indexes_and_version(run_cli, library: Path) -> None:
    run_cli("import", str(PAYLOADS / "acedata_single.json"))
    con = sqlite3.connect(library / "archiver.db")
    assert con.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert con.execute("pragma user_version").fetchone()[0] >= 1
    indexes = {r[1] for r in con.execute("select * from sqlite_master where type='index'")}
    assert "ix_tasks_poll" in indexes and "ix_assets_state" in indexes
    with pytest.raises(sqlite3.IntegrityError):
        con.execute("insert into tasks (source, task_id, status, polls, idle_polls, poll_errors) "
                    "select source, task_id, status, 0, 0, 0 from tasks")
    con.close()


@pytest.mark.sqlite_only
def test_corrupt_database_is_a_clear_error(run_cli, library: Path) -> None:
    (library / "archiver.db").write_bytes(b"this is not a database" * 100)
    result = run_cli("ls")
    assert result.exit_code != 0
    assert "damaged" in result.output and "Traceback" not in result.output


def test_plain_table_when_piped(run_cli) -> None:
    run_cli("import", str(PAYLOADS / "mountsea_completed.json"))
    result = run_cli("ls")
    lines = result.output.splitlines()
    assert lines[0].split("\t")[:3] == ["source", "clip_id", "title"]
    assert "Summer Vibes" in lines[1]
    csv_out = run_cli("ls", "--format", "csv").output.splitlines()
    assert csv_out[0].startswith("source,task_id,clip_id,title")
