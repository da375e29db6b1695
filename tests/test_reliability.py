"""Issue #7: nothing is lost and nothing leaks. Part 1 (fault storm) and part 6 (lost database).

The harness these tests drive (a library of many clips across the sources, every fault the
simulator knows, repeated syncs, then a check of every byte and every row) is `archiver.testkit`,
shared with the other `test_reliability_*` files and the long run, `bench/torture.py`.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
from pathlib import Path
from typing import Iterator

import pytest

from archiver.simulator import Simulator
from archiver.testkit import (Lib, Plan, check_library, inject_storm, media_requests_for, no_tracebacks, populate,
                              rebuild_matches, sim_clips, snapshot, storm)


# ---------------------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def stormed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lib, Plan, list[int]]]:
    """One library of 54+ clips through the whole storm, shared by the two tests below (in order)."""
    rng = random.Random(int(os.environ.get("ARCHIVER_TORTURE_SEED", "7")))
    with Simulator(seed=rng.randrange(1 << 30)) as sim:
        lib = Lib.create(sim, tmp_path_factory.mktemp("storm"))
        plan = populate(lib, rounds=4, rng=rng)
        inject_storm(sim, plan, rng)
        codes = storm(lib, plan)
        yield lib, plan, codes


def test_fault_storm_loses_nothing_and_reports_the_unrecoverable(stormed: tuple[Lib, Plan, list[int]]) -> None:
    lib, plan, codes = stormed
    assert len([c for s, t in plan.tasks for c in sim_clips(lib.sim, s, t)]) >= 50
    figures = check_library(lib, plan)
    assert figures.problems == []
    assert figures.files >= 90 and figures.clips >= 50
    assert no_tracebacks(lib) == []
    assert set(codes) <= {0, 1} and codes[-1] == 1  # the dead link keeps the run from being clean
    hit = {r.fault for r in lib.sim.requests if r.fault}
    assert {"429", "500", "502", "503", "reset", "stall", "html200", "malformed", "unknown_status",
            "truncate", "drop", "no_length", "expire", "gone"} <= hit, hit

    (gone,) = plan.gone
    before = media_requests_for(lib.sim, gone)
    code, summary = lib.sync()
    assert code == 1 and any(gone in e for e in summary["errors"])  # reported again ...
    assert media_requests_for(lib.sim, gone) > before  # ... because it was tried again
    stats = json.loads(lib.cli("stats", "--format", "json").output)
    assert stats["files"]["failed"] == 2 and stats["last_sync"]["exit_code"] == 1  # its audio and cover
    listed = {t["task_id"]: t for t in json.loads(lib.cli("tasks", "--format", "json").output)}
    for _source, task_id in plan.unknown + plan.provider_failed:
        assert listed[task_id]["status"] == "failed" and listed[task_id]["error"]
    assert lib.cli("verify").exit_code == 0


def test_rebuild_after_the_storm_restores_every_archived_clip(stormed: tuple[Lib, Plan, list[int]]) -> None:
    lib, plan, _codes = stormed
    before = snapshot(lib)
    assert len(before) >= 50
    assert rebuild_matches(lib) == []
    assert lib.cli("verify").exit_code == 0
    code, summary = lib.sync()  # the rebuilt library syncs on without fetching anything again
    assert summary.get("files_downloaded", 0) == 0 or code == 1
    assert snapshot(lib) == before
    assert no_tracebacks(lib) == []


@pytest.mark.parametrize("fmt", ["flac", "wav", "mp3", "m4a"])
def test_cut_body_without_length_in_formats_whose_header_states_the_length(tmp_path: Path, fmt: str) -> None:
    """A FLAC header states the full length and its frames carry no cheap end marker: only asking
    the server for what follows the body (`Range: bytes=<size>-`) shows the cut."""
    with Simulator() as sim:
        lib = Lib.create(sim, tmp_path / fmt)
        task_id = sim.add_task("mountsea", steps=0, audio_format=fmt)
        lib.cli("add", "mountsea", task_id)
        sim.inject("no_length", clip_id=sim_clips(sim, "mountsea", task_id)[0].clip_id)  # once: the retry is whole
        lib.sync(once=True)
        (row,) = lib.query("SELECT state, size, url FROM assets")
        assert row["state"] == "downloaded" and row["size"] >= len(sim.media_bytes(row["url"]))


def test_damaged_database_is_one_clear_message_and_rebuild_recovers(tmp_path: Path) -> None:
    """Damage to the whole file, or to one page that only a later query reads."""
    with Simulator() as sim:
        lib = Lib.create(sim, tmp_path / "lib")
        for _ in range(8):
            lib.cli("add", "acedata", sim.add_task("acedata", steps=0))
        assert lib.sync(once=True)[0] == 0
        con = sqlite3.connect(lib.db)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = int(con.execute("PRAGMA page_size").fetchone()[0])
        roots = [int(r[0]) for r in con.execute(
            "SELECT rootpage FROM sqlite_master WHERE name IN ('tasks', 'clips', 'assets', 'clips_fts_data', "
            "'ix_assets_path', 'sqlite_autoindex_clips_1') ORDER BY rootpage")]
        con.close()
        before, good = snapshot(lib), lib.db.read_bytes()
        noise = random.Random(1)

        def scrambled(number: int) -> bytes:
            data = bytearray(good)
            data[(number - 1) * page:number * page] = noise.randbytes(page)
            return bytes(data)

        damages = {"garbage": b"\x00garbage" * 512, "header only": b"SQLite format 3\x00" + b"\xff" * 84,
                   "cut in half": good[:len(good) // 2],
                   "all but the header": good[:100] + noise.randbytes(len(good) - 100)}
        damages |= {f"page {number}": scrambled(number) for number in [*roots, len(good) // page]}
        commands = [("ls",), ("tasks",), ("stats",), ("search", "x"), ("verify",), ("sync", "--now"),
                    ("add", "acedata", "x"), ("show", "x"), ("export", "json")]
        for name, data in damages.items():
            for stale in [*lib.root.glob("archiver.db-*"), *lib.root.glob("archiver.db.damaged-*")]:
                stale.unlink()
            lib.db.write_bytes(data)
            for args in commands:
                result = lib.cli(*args)
                assert result.exit_code != 70, (name, args, result.output)
                assert "Traceback" not in result.output and "internal error" not in result.output, (name, args)
                assert result.exit_code == 0 or result.output.count("error:") == 1, (name, args, result.output)
                if " is damaged " in result.output or not name.startswith("page"):
                    assert result.exit_code != 0 and "archiver.db" in result.output, (name, args, result.output)
                    assert "archiver rebuild" in result.output, (name, args, result.output)
            rebuilt = lib.cli("rebuild", "--force")
            assert rebuilt.exit_code == 0, (name, rebuilt.output)
            assert snapshot(lib) == before, name
        assert lib.crashes == []
