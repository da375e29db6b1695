"""A poll's answers and its schedule stored together (`Store.record_polls`): the same rows as
`apply` then `schedule`, each task row written once."""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.engine import Engine

import archiver.store as store_module
from archiver.models import UTCDateTime, dumps
from archiver.records import ClipRecord, PollOutcome, Status, TaskRecord
from archiver.store import Store
from conftest import sync_now

T0 = datetime(2025, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
SOURCE = "acedata"
# What one poll brings for one task: an answer (fresh, repeated or stale), or no answer.
# "mixed": an answer stored beside an error outcome (one a caller of `record_polls` may pass);
# "gone" and "answered_gone": not found once more after four times over eight days (given up).
KINDS = ("running", "succeeded", "same", "stale", "error", "not_found", "new", "mixed", "gone", "answered_gone")
LONG_GONE = ("gone", "answered_gone")


def _record(task_id: str, status: Status, at: datetime, clips: int) -> TaskRecord:
    return TaskRecord(SOURCE, task_id, status, provider_status=status.value.upper(), updated_at=at,
                      raw={"id": task_id, "at": at.isoformat(), "status": status.value},
                      clips=tuple(ClipRecord(f"{task_id}-c{n}", title=f"song {n}",
                                             audio_url=f"http://127.0.0.1/{task_id}/{n}.mp3")
                                  for n in range(clips)))


def _poll(kinds: list[str], round_: int) -> tuple[list[TaskRecord], dict[str, PollOutcome]]:
    """Round 0 sets the scene (every task answered, running); round 1 is the poll under test."""
    records: list[TaskRecord] = []
    outcomes: dict[str, PollOutcome] = {}
    for n, kind in enumerate(kinds):
        task_id = f"t{n}"
        if kind == "new" and round_ == 0:
            continue  # a task the database first hears of in the poll under test
        if round_ == 0:
            status = Status.SUCCEEDED if kind == "stale" else Status.RUNNING
            records.append(_record(task_id, status, T0, 1))
        elif kind in ("running", "succeeded", "new", "mixed", "answered_gone"):
            status = Status.SUCCEEDED if kind == "succeeded" else Status.RUNNING
            records.append(_record(task_id, status, T0 + timedelta(minutes=1), 2 if kind == "succeeded" else 1))
        elif kind == "same":
            records.append(_record(task_id, Status.RUNNING, T0, 1))
        elif kind == "stale":  # a running answer after a finished one
            records.append(_record(task_id, Status.RUNNING, T0 - timedelta(minutes=1), 1))
        if kind in ("error", "mixed") and round_ == 1:
            outcomes[task_id] = PollOutcome.error("HTTP 502")
        elif kind in ("not_found", *LONG_GONE) and round_ == 1:
            outcomes[task_id] = PollOutcome.not_found("gone")
        elif kind != "new" or round_ == 1:
            outcomes[task_id] = PollOutcome.ok()
    return records, outcomes


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    con = sqlite3.connect(path)
    try:
        return {table: con.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
                for table in ("tasks", "clips", "assets")}
    finally:
        con.close()


def _by_two_steps(store: Store, records: list[TaskRecord], outcomes: dict[str, PollOutcome],
                  now: datetime) -> set[str]:
    result = store.apply(records, now)
    return store.schedule(SOURCE, outcomes, 60.0, 3600.0, now, changed=set(result.changed_task_ids))


def _together(store: Store, records: list[TaskRecord], outcomes: dict[str, PollOutcome],
              now: datetime, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    monkeypatch.setattr(store_module, "utcnow", lambda: now)
    return store.record_polls(SOURCE, records, outcomes, 60.0, 3600.0)[1]


def _not_found_for_days(path: Path, task_ids: list[str]) -> None:
    since = UTCDateTime().process_bind_param(T0 - timedelta(days=8), None)
    con = sqlite3.connect(path)
    try:
        with con:
            con.executemany("UPDATE tasks SET poll_errors = 4, not_found_since = ? WHERE task_id = ?",
                            [(since, task_id) for task_id in task_ids])
    finally:
        con.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=12))
def test_record_polls_leaves_the_rows_apply_then_schedule_leave(kinds: list[str], tmp_path_factory: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path_factory.mktemp("polls")
    paths = {way: folder / f"{way}.db" for way in ("two", "one")}
    given_up = {}
    for way, path in paths.items():
        with Store(f"sqlite:///{path}") as store:
            store.add_tasks(SOURCE, [f"t{n}" for n, kind in enumerate(kinds) if kind != "new"], now=T0)
            for round_, now in enumerate((T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2))):
                if round_ == 1:
                    _not_found_for_days(path, [f"t{n}" for n, kind in enumerate(kinds) if kind in LONG_GONE])
                records, outcomes = _poll(kinds, min(round_, 1))  # the same answers twice: idle counts grow
                if way == "two":
                    given_up[way] = _by_two_steps(store, records, outcomes, now)
                else:
                    given_up[way] = _together(store, records, outcomes, now, monkeypatch)
    assert given_up["one"] == given_up["two"]
    status = {row[2]: row[3] for row in _rows(paths["one"])["tasks"]}
    assert all(status[f"t{n}"] == "failed" for n, kind in enumerate(kinds) if kind in LONG_GONE), status
    assert _rows(paths["one"]) == _rows(paths["two"])


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_a_sync_writes_each_polled_task_row_once(sim: Any, sim_cli: Callable[..., Any], engine: str) -> None:
    """SQLite rewrites a whole row, its raw JSON and all, for any change: an answered task's new
    values and its schedule go in one UPDATE, and its columns are not read back to schedule it."""
    ids = [sim.add_task(SOURCE, steps=10**6, clips=1) for _ in range(30)]
    assert sim_cli("add", SOURCE, *ids).exit_code == 0
    writes: list[int] = []  # rows written with an answer or a schedule (a fleet's claims aside)
    reads: list[str] = []

    def seen(conn: Any, cursor: Any, sql: str, params: Any, context: Any, executemany: bool) -> None:
        words = " ".join(sql.split()).lower()
        if words.startswith("update tasks set") and ("raw_json" in words or "polls = polls + 1" in words):
            writes.append(len(params) if executemany else 1)
        elif words.startswith("select tasks.id, tasks.task_id, tasks.idle_polls"):
            reads.append(words)

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        code, report = sync_now(sim_cli, "--no-download")
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    assert code == 0 and report["tasks_polled"] == len(ids), report
    assert sum(writes) == len(ids), writes
    assert not reads, reads  # the batch read them along with the rows it compares
    rows = sim_cli("tasks", "--format", "json")
    assert rows.exit_code == 0, rows.output


_EXACT = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.text()


def _nested(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=25)


_PAYLOADS = _nested(_EXACT | st.floats())


def _strict(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


@settings(max_examples=500, deadline=None)
@given(payload=_PAYLOADS)
def test_raw_json_is_strict_json_of_the_payload(payload: Any) -> None:
    """Whatever a provider's body parsed into (big integers, NaN, any text, deep lists) is stored
    as JSON any reader takes back, equal to it; text aside, exactly what the standard encoder wrote."""
    text = dumps(payload)
    standard = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    assert _strict(text) == json.loads(standard, parse_constant=lambda _name: None)  # NaN and infinities: null


@settings(max_examples=500, deadline=None)
@given(payload=_nested(_EXACT))
def test_raw_json_without_numbers_with_a_point_is_the_standard_encoders_text(payload: Any) -> None:
    assert dumps(payload) == json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def test_raw_json_nested_past_orjsons_limit_is_written_all_the_same() -> None:
    deep: Any = [math.nan, 10**30]
    for _ in range(300):
        deep = [deep]
    assert dumps(deep) == "[" * 301 + "null," + str(10**30) + "]" * 301


def test_a_payload_with_nan_is_stored_as_json_sqlite_reads(tmp_path: Path) -> None:
    record = TaskRecord(SOURCE, "t1", Status.SUCCEEDED, raw={"duration": math.nan, "deep": [[[1]]] * 3,
                                                               "big": 10**30},
                        clips=(ClipRecord("c1", raw={"seconds": math.inf, "title": "x"}),))
    with Store(f"sqlite:///{tmp_path / 'a.db'}") as store:
        store.apply([record], T0)
        rows = store.execute("SELECT json_valid(raw_json), json_extract(raw_json, '$.big') FROM tasks "
                             "UNION ALL SELECT json_valid(raw_json), json_extract(raw_json, '$.title') FROM clips")
    assert [tuple(r) for r in rows] == [(1, 1e30), (1, "x")]  # SQLite reads an integer past 64 bits as a real
