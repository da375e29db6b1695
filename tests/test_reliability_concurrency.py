"""Issue #7, part 3: syncs started together never run together; readers never see "locked".

Two or five `archiver sync` processes started at once on one SQLite library: one works, the
others exit 75 at once, or with `--wait` take their turn (their runs never overlap). On a
PostgreSQL catalog there is no file lock: syncs started together share the work through claims,
and nothing is lost or fetched twice. `ls`, `search`, `stats`, `tasks` and even `add` while a
sync writes never fail with "database is locked", on either engine.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from archiver.testkit import SYNC, SYNC_ARGS, Lib, Plan, check_library, no_tracebacks, populate, spawn

from archiver.simulator import Simulator

CONFIG = "connect_timeout = 2\nread_timeout = 30\n"  # the lock holder's stalled poll must not time out


@pytest.mark.sqlite_only(reason="the SQLite library's file lock; PostgreSQL: test_simultaneous_syncs_share_a_catalog")
@pytest.mark.parametrize("count", [2, 5])
def test_simultaneous_syncs_one_works_the_others_exit_75(tmp_path: Path, count: int) -> None:
    with Simulator() as sim:
        lib = Lib.create(sim, tmp_path / "lib", CONFIG)
        for source in ("ccapi-suno", "acedata"):
            assert lib.cli("add", source, sim.add_task(source, steps=0)).exit_code == 0
        sim.inject("stall", target="api", provider="ccapi", delay=5.0)  # whoever holds the lock, holds it 5 s
        started = time.monotonic()
        procs = [spawn(lib, *SYNC_ARGS) for _ in range(count)]
        results = []
        for proc in procs:
            _out, err = proc.communicate(timeout=120)
            results.append((proc.returncode, err, time.monotonic() - started))
        codes = sorted(code for code, _err, _t in results)
        assert codes == [0] + [75] * (count - 1), results
        holder_done = max(t for code, _err, t in results if code == 0)
        for code, err, _t in results:
            if code == 75:
                assert "another archiver sync is running" in err and "Traceback" not in err
        assert holder_done >= 5.0  # the others really were refused while it ran
        assert len(lib.query("SELECT id FROM sync_runs")) == 1


@pytest.mark.sqlite_only(reason="`--wait` waits for the SQLite library's file lock; PostgreSQL workers share it")
def test_simultaneous_syncs_with_wait_take_turns(tmp_path: Path) -> None:
    rng = random.Random(5)
    with Simulator() as sim:
        lib = Lib.create(sim, tmp_path / "lib", CONFIG)
        plan = populate(lib, rounds=1, rng=rng)
        sim.inject("stall", target="api", provider="acedata", delay=1.0)
        procs = [spawn(lib, *SYNC_ARGS, "--wait", "120") for _ in range(5)]
        errs = []
        for proc in procs:
            _out, err = proc.communicate(timeout=300)
            errs.append(err)
            assert proc.returncode == 0, err
        runs = [(datetime.fromisoformat(r["started_at"]), datetime.fromisoformat(r["finished_at"]))
                for r in lib.query("SELECT started_at, finished_at FROM sync_runs ORDER BY started_at")]
        assert len(runs) == 5
        for (_start, end), (next_start, _end) in zip(runs, runs[1:], strict=False):
            assert end <= next_start  # one after the other, never together
        assert check_library(lib, plan).problems == []
        assert not [e for e in errs if "Traceback" in e]


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_simultaneous_syncs_share_a_catalog(tmp_path: Path, pg_catalog: str) -> None:
    """Five syncs started at once on one PostgreSQL catalog: each ends with 0, every file is
    archived once and fetched once, each task polled once, five runs recorded."""
    with Simulator(media_latency=0.05) as sim:  # each file takes a moment: the workers overlap
        lib = Lib.create(sim, tmp_path / "lib", CONFIG, pg_catalog)
        plan = Plan()
        for source in ("ccapi-suno", "acedata", "mountsea", "aimusicapi") * 2:
            plan.tasks.append((source, sim.add_task(source, clips=3, steps=0)))
        for source in {s for s, _t in plan.tasks}:
            assert lib.cli("add", source, *(t for s, t in plan.tasks if s == source)).exit_code == 0
        procs = [spawn(lib, *SYNC) for _ in range(5)]
        summaries = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0 and "Traceback" not in err, err
            summaries.append(json.loads([line for line in out.splitlines() if line.startswith("{")][-1]))
        figures = check_library(lib, plan)
        assert figures.problems == [] and figures.clips == 20 and figures.files >= 30
        assert sum(s["files_downloaded"] for s in summaries) == figures.files  # none fetched by two
        fetched = Counter(r.path for r in sim.requests if r.target == "media")
        assert len(fetched) == figures.files and set(fetched.values()) == {1}, fetched
        assert lib.query("SELECT DISTINCT polls FROM tasks") == [(1,)]  # all succeed at their first poll
        assert len(lib.query("SELECT id FROM sync_runs")) == 5
        assert lib.query("SELECT COUNT(*) FROM tasks WHERE claimed_by IS NOT NULL") == [(0,)]


def test_reads_and_adds_while_a_sync_writes_never_see_a_locked_database(tmp_path: Path,
                                                                        pg_catalog: str | None) -> None:
    rng = random.Random(9)
    with Simulator() as sim:
        lib = Lib.create(sim, tmp_path / "lib", CONFIG, pg_catalog)
        plan = populate(lib, rounds=2, rng=rng)
        for _ in range(4):
            sim.inject("stall", target="media", delay=0.4)  # stretch the sync to a few seconds
        proc = spawn(lib, "sync", "--now", "--quiet")  # one pass: what is added meanwhile waits
        reads, adds = 0, 0
        commands = [("ls",), ("ls", "--format", "json"), ("search", "love"), ("stats",), ("tasks",),
                    ("ls", "duration:1..", "--sort", "title")]
        while proc.poll() is None:
            for args in commands:
                result = lib.cli(*args)
                assert result.exit_code == 0, (args, result.output)
                assert "locked" not in result.output
                reads += 1
            task_id = sim.add_task("mountsea", steps=0)
            result = lib.cli("add", "mountsea", task_id)
            assert result.exit_code == 0 and "locked" not in result.output, result.output
            plan.tasks.append(("mountsea", task_id))
            adds += 1
        _out, err = proc.communicate()
        assert proc.returncode == 0, err
        assert reads >= 12 and adds >= 2, (reads, adds)
        print(f"{reads} reads and {adds} adds during the sync")
        final = spawn(lib, *SYNC_ARGS)  # the tasks added meanwhile
        assert final.wait(timeout=120) == 0
        assert check_library(lib, plan).problems == []
        assert no_tracebacks(lib) == []
