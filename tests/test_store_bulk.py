"""The bulk upsert of polled records: every clip gets one creation time, and the year query finds it."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from archiver.records import ClipRecord, Status, TaskRecord
from archiver.store import Store
from conftest import sync_now

T0 = datetime(2024, 2, 3, 4, 5, 6, tzinfo=timezone.utc)


def _created(store: Store, clip_id: str) -> str | None:
    return store.execute("SELECT created_at FROM clips WHERE clip_id = :c", c=clip_id)[0][0]


def test_a_clip_without_a_time_takes_its_tasks_then_the_end_then_first_seen(tmp_path: Path) -> None:
    seen = T0 + timedelta(days=40)
    with Store(f"sqlite:///{tmp_path / 'a.db'}") as store:
        store.apply([
            TaskRecord("mountsea", "made", Status.SUCCEEDED, created_at=T0, finished_at=T0 + timedelta(days=1),
                       clips=(ClipRecord("c-made"),)),
            TaskRecord("mountsea", "ended", Status.SUCCEEDED, finished_at=T0 + timedelta(days=2),
                       clips=(ClipRecord("c-ended"),)),
            TaskRecord("mountsea", "bare", Status.RUNNING, clips=(ClipRecord("c-bare"),)),
            TaskRecord("acedata", "own", Status.SUCCEEDED, created_at=T0,
                       clips=(ClipRecord("c-own", created_at=T0 + timedelta(days=3)),)),
        ], now=seen)
        assert _created(store, "c-made") == "2024-02-03T04:05:06.000000+00:00"
        assert _created(store, "c-ended") == "2024-02-05T04:05:06.000000+00:00"
        assert _created(store, "c-bare") == "2024-03-14T04:05:06.000000+00:00"
        assert _created(store, "c-own") == "2024-02-06T04:05:06.000000+00:00"
        # stored once: a later poll that knows the task's time leaves the clip's time alone
        store.apply([TaskRecord("mountsea", "bare", Status.SUCCEEDED, created_at=T0, clips=(ClipRecord("c-bare"),))],
                    now=seen + timedelta(days=1))
        assert _created(store, "c-bare") == "2024-03-14T04:05:06.000000+00:00"


def test_a_mountsea_clip_is_found_by_year_and_sorted_by_its_time(sim: Any, sim_cli: Callable[..., Any],
                                                               library: Path) -> None:
    first = sim.add_task("mountsea", clips=2, steps=0)  # made first: the simulator spaces tasks 3 s apart
    second = sim.add_task("acedata", clips=2, steps=0)
    assert sim_cli("add", "mountsea", first).exit_code == 0
    assert sim_cli("add", "acedata", second).exit_code == 0
    code, report = sync_now(sim_cli, "--no-download")
    assert code == 0, report
    con = sqlite3.connect(library / "archiver.db")
    try:
        counts = dict(con.execute("SELECT source, COUNT(*) FROM clips GROUP BY source"))
        created = dict(con.execute("SELECT c.source, MIN(c.created_at) FROM clips c GROUP BY c.source"))
        raw = con.execute("SELECT raw_json FROM clips WHERE source = 'mountsea'").fetchone()[0]
    finally:
        con.close()
    assert "created" not in raw.lower()  # the payload itself carries no time for these clips
    year = created["mountsea"][:4]
    result = sim_cli("ls", f"year:{year}", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert counts["mountsea"] >= 1 and counts["acedata"] >= 1, counts
    assert [r["source"] for r in rows] == ["mountsea"] * counts["mountsea"] + ["acedata"] * counts["acedata"], rows
    assert all(r["created_at"] for r in rows)


def test_a_repeated_wall_clock_time_is_stored_at_its_own_instant() -> None:
    """Two times of one zone that compare equal (the hour a clock goes back) are two instants."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from archiver.upsert import _time_text

    first = datetime(2024, 11, 3, 1, 30, tzinfo=ZoneInfo("America/New_York"))
    second = first.replace(fold=1)
    assert _time_text(first) == "2024-11-03T05:30:00.000000+00:00"
    assert _time_text(second) == "2024-11-03T06:30:00.000000+00:00"


def test_a_clip_listed_twice_in_one_answer_is_kept_once_and_said(tmp_path: Path) -> None:
    """Both copies cannot be kept (one id, one row): the last is, as a later answer would be, and
    the run says so rather than dropping a song without a word."""
    with Store(f"sqlite:///{tmp_path / 'a.db'}") as store:
        result = store.apply([TaskRecord("acedata", "t-1", Status.SUCCEEDED, created_at=T0, clips=(
            ClipRecord("same", title="First"), ClipRecord("other", title="Other"), ClipRecord("same", title="Second")))])
        assert store.execute("SELECT clip_id, title FROM clips ORDER BY clip_id") == [("other", "Other"),
                                                                                   ("same", "Second")]
        assert result.warnings == ["acedata: clip same is listed more than once in task t-1's answer; "
                                   "the last copy is kept"]
        again = store.apply([TaskRecord("acedata", "t-1", Status.SUCCEEDED, created_at=T0, clips=(
            ClipRecord("same", title="Second"), ClipRecord("other", title="Other")))])
        assert again.warnings == []
