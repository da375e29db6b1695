"""Every run ends: a server that trickles bytes, each well within the read timeout, must not hold
`archiver sync` (and the library lock) forever.

The simulator's "trickle" fault sends the normal answer one byte at a time. `archiver sync` runs as
a real subprocess under a hard timeout, so a run that would hang fails the test instead of hanging
it. Each run must end by itself, in bounded time, with exit 1 and a "stalled" error; the lock must
be free afterwards (on PostgreSQL: every claim given back, so the next run does not wait for a
lease) and the database must not claim what did not arrive.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from archiver.simulator import Simulator
from archiver.testkit import Catalog, Row

# read_timeout 1 s: a trickle's stall window; connect 2 + 2 x 1 = 4 s: an API request's deadline
CONFIG = "connect_timeout = 2\nread_timeout = 1\nretry_budget = 3\n"
BOUND = 60.0  # seconds a trickled run may take at most (the issue: "in bounded time")
KILL_AFTER = 90.0  # a run still going then is hung: killed, and the test fails


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as simulator:
        yield simulator


class Library:
    def __init__(self, sim: Simulator, where: Path, db_url: str | None = None) -> None:
        self.sim = sim
        self.root = where / "library"
        self.db_env = {"ARCHIVER_DB": db_url} if db_url else {}
        self.catalog = Catalog(db_url) if db_url else Catalog.sqlite(self.root / "archiver.db")
        self.config = where / "config.toml"
        self.config.write_text(CONFIG, encoding="utf-8")
        self.config.chmod(0o600)

    def run(self, *args: str) -> tuple[int, str, str, float]:
        """One CLI run as its own process: exit code, stdout, stderr and seconds taken."""
        env = {**os.environ, **self.sim.env(), "ARCHIVER_LIBRARY": str(self.root),
               "ARCHIVER_CONFIG": str(self.config), **self.db_env}
        started = time.monotonic()
        try:
            done = subprocess.run([sys.executable, "-m", "archiver", *args], env=env, capture_output=True,
                                  text=True, timeout=KILL_AFTER)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`archiver {' '.join(args)}` was still running after {KILL_AFTER:.0f} s: it hangs")
        return done.returncode, done.stdout, done.stderr, time.monotonic() - started

    def sync(self) -> tuple[int, dict[str, Any], str, float]:
        """`sync --now --json`: exit code, summary, everything printed, seconds taken."""
        code, out, err, took = self.run("sync", "--now", "--json")
        lines = [line for line in out.splitlines() if line.startswith("{")]
        assert lines, out + err
        return code, json.loads(lines[-1]), out + err, took

    def rows(self, sql: str) -> list[Row]:
        return self.catalog.rows(sql)


def _assert_ends_stalled(code: int, summary: dict[str, Any], output: str, took: float) -> None:
    assert took < BOUND, f"the run took {took:.0f} s"
    assert code == 1, output
    assert any("stalled" in error for error in summary["errors"]), summary["errors"]
    assert "Traceback" not in output


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)  # PostgreSQL: the API trickle below (half a minute each)
def test_sync_ends_when_a_media_server_trickles(sim: Simulator, tmp_path: Path, pg_catalog: str | None) -> None:
    """4 B/s: each byte far inside read_timeout, the file far from ever arriving."""
    lib = Library(sim, tmp_path, pg_catalog)
    task_id = sim.add_task("ccapi-suno", clips=1, steps=0)
    assert lib.run("add", "ccapi-suno", task_id)[0] == 0
    sim.inject("trickle", target="media", times=-1)

    code, summary, output, took = lib.sync()
    _assert_ends_stalled(code, summary, output, took)
    assert any(r.fault == "trickle" for r in sim.requests if r.target == "media")
    assets = lib.rows("select kind, state, path, last_error from assets order by kind")
    assert [a["kind"] for a in assets] == ["audio", "image"]
    for asset in assets:  # nothing half-arrived is recorded as archived
        assert asset["state"] == "failed" and asset["path"] is None, dict(asset)
        assert "stalled" in asset["last_error"]
    assert not [p for p in lib.root.rglob("*") if p.is_file() and p.suffix in (".mp3", ".jpg")]

    sim.clear_faults()  # the lock is free and the library is consistent: the next run finishes the job
    code, summary, output, _ = lib.sync()
    assert code == 0, output
    downloaded = lib.rows("select path from assets where state = 'downloaded'")
    assert len(downloaded) == 2
    for row in downloaded:
        assert (lib.root / row["path"]).is_file()


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_sync_ends_when_an_api_body_trickles(sim: Simulator, tmp_path: Path, pg_catalog: str | None) -> None:
    """httpx's read timeout restarts with every byte; the per-request deadline does not. On
    PostgreSQL the retry budget is the fleet's, counted in the catalog: it holds all the same."""
    lib = Library(sim, tmp_path, pg_catalog)
    task_id = sim.add_task("ccapi-suno", clips=1, steps=0)
    assert lib.run("add", "ccapi-suno", task_id)[0] == 0
    sim.inject("trickle", target="api", provider="ccapi", times=-1)

    code, summary, output, took = lib.sync()
    _assert_ends_stalled(code, summary, output, took)
    trickled = [r for r in sim.requests if r.target == "api" and r.fault == "trickle"]
    assert len(trickled) > 1  # retried within the run's budget, not given up at once
    assert summary["retries"] <= 3  # ... and no further than it
    (task,) = lib.rows("select status from tasks")
    assert task["status"] != "succeeded"
    assert lib.rows("select count(*) as n from assets where state = 'downloaded'")[0]["n"] == 0

    sim.clear_faults()
    code, summary, output, _ = lib.sync()
    assert code == 0, output
    assert summary["files_downloaded"] == 2
