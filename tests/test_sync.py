"""`archiver add` and `archiver sync` through the real CLI against the simulator on loopback."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from archiver.providers.http import join_url, parse_retry_after
from archiver.lock import LibraryLock
from conftest import sync_json

SOURCES = ["ccapi-suno", "ccapi-producer", "mountsea", "acedata", "aimusicapi"]


def tasks_json(sim_cli) -> dict[str, dict]:
    result = sim_cli("tasks", "--format", "json")
    assert result.exit_code == 0, result.output
    return {t["task_id"]: t for t in json.loads(result.output)}


def clips_json(sim_cli) -> list[dict]:
    result = sim_cli("ls", "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)




def test_add_is_idempotent_and_reads_files(sim_cli, tmp_path: Path) -> None:
    first = sim_cli("add", "acedata", "a1", "a2")
    assert first.exit_code == 0 and "2 new" in first.output
    ids = tmp_path / "ids.txt"
    ids.write_text("# my tasks\na2\n\na3  # the third\n")
    again = sim_cli("add", "acedata", "--file", str(ids))
    assert again.exit_code == 0 and "1 new" in again.output and "1 already known" in again.output
    stdin = sim_cli("add", "acedata", "--file", "-", input="a4\na1\n")
    assert "1 new" in stdin.output
    assert set(tasks_json(sim_cli)) == {"a1", "a2", "a3", "a4"}


def test_add_unknown_source_lists_valid_ones(sim_cli) -> None:
    result = sim_cli("add", "suno", "x")
    assert result.exit_code == 2
    for name in SOURCES:
        assert name in result.output


def test_every_source_reaches_its_final_status(sim, sim_cli) -> None:
    expected: dict[str, tuple[str, list[str]]] = {}
    for source in SOURCES:
        for outcome in ("succeeded", "failed"):
            titles = [f"{source} {outcome} song {i}" for i in range(2)]
            task_id = sim.add_task(source, outcome=outcome, titles=titles, steps=2)
            expected[task_id] = (outcome, titles)
            assert sim_cli("add", source, task_id).exit_code == 0
    if True:  # mountsea's extra endings
        for outcome in ("cancelled", "timeout"):
            task_id = sim.add_task("mountsea", outcome=outcome)
            expected[task_id] = ("cancelled" if outcome == "cancelled" else "failed", [])
            sim_cli("add", "mountsea", task_id)
    code, summary = sync_json(sim_cli, "--until-done", "--interval", "0.05", "--timeout", "60", "--no-download")
    assert code == 0, summary
    assert summary["still_unfinished"] == 0 and summary["errors"] == []
    tasks = tasks_json(sim_cli)
    clips = clips_json(sim_cli)
    for task_id, (outcome, titles) in expected.items():
        task = tasks[task_id]
        assert task["status"] == outcome, task
        if outcome == "succeeded":
            got = sorted(c["title"] for c in clips if c["task_id"] == task_id)
            want = sorted(titles[: len(got)])
            assert got == want and got, (task_id, got)
            for clip in (c for c in clips if c["task_id"] == task_id):
                assert clip["duration"] and clip["duration"] > 0 and clip["audio_url"].startswith("http://127.0.0.1")
        elif outcome == "failed":
            assert task["error"], task
    assert summary["newly_succeeded"] == 5 and summary["failed"] == 6


def test_batch_endpoints_cost_ceil_n_over_batch_size(sim, sim_cli) -> None:
    counts = {"ccapi-suno": 120, "acedata": 51, "mountsea": 7}
    for source, n in counts.items():
        ids = [sim.add_task(source, steps=0) for _ in range(n)]
        sim_cli("add", source, "--file", "-", input="\n".join(ids))
    code, summary = sync_json(sim_cli, "--no-download", extra_config="[providers.acedata]\nbatch_size = 25\n")
    assert code == 0, summary
    api = [r for r in sim.requests if r.target == "api"]
    suno = [r for r in api if r.path.endswith("suno/fetch")]
    ace = [r for r in api if r.provider == "acedata"]
    mountsea = [r for r in api if r.provider == "mountsea"]
    assert len(suno) == math.ceil(120 / 50) and all(len(r.json["ids"]) <= 50 for r in suno)
    assert len(ace) == math.ceil(51 / 25) and all(r.json["action"] == "retrieve_batch" for r in ace)
    assert len(mountsea) == 7
    assert summary["requests"] == len(api) == 3 + 3 + 7
    assert summary["tasks_polled"] == 178 and summary["newly_succeeded"] == 178


def test_headers_user_agent_auth_keepalive(sim, sim_cli) -> None:
    task_id = sim.add_task("aimusicapi", steps=0)
    sim_cli("add", "aimusicapi", task_id)
    sync_json(sim_cli, "--no-download")
    (request,) = [r for r in sim.requests if r.target == "api"]
    assert request.headers["user-agent"].startswith("archiver/")
    assert request.headers["authorization"] == "Bearer sim-token"
    assert request.path.endswith(f"/api/v1/producer/task/{task_id}")


@pytest.mark.parametrize("suffix", ["", "/", "//"])
def test_base_url_joins_robustly(sim, sim_cli, suffix: str) -> None:
    task_id = sim.add_task("ccapi-producer", steps=0)
    sim_cli("add", "ccapi-producer", task_id)
    base = sim.provider_url("ccapi").rstrip("/") + suffix
    code, summary = sync_json(sim_cli, "--no-download", env={"ARCHIVER_CCAPI_BASE_URL": base})
    assert code == 0 and summary["newly_succeeded"] == 1


def test_join_url_and_retry_after_parsing() -> None:
    assert join_url("https://api.ccapi.ai/", "/producer/fetch") == "https://api.ccapi.ai/producer/fetch"
    assert join_url("https://api.ccapi.ai//", "producer/fetch/x") == "https://api.ccapi.ai/producer/fetch/x"
    assert join_url("http://h:1/ccapi", "//suno/fetch") == "http://h:1/ccapi/suno/fetch"
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("soon") is None


@pytest.mark.parametrize("kind,retry_after", [("429", 1), ("429", "date"), ("500", None), ("502", None),
                                              ("503", None), ("reset", None), ("malformed", None)])
def test_transient_faults_are_survived(sim, sim_cli, kind: str, retry_after) -> None:
    task_id = sim.add_task("acedata", steps=0)
    sim_cli("add", "acedata", task_id)
    sim.inject(kind, provider="acedata", times=2, retry_after=retry_after)
    code, summary = sync_json(sim_cli, "--no-download")
    assert code == 0, summary
    assert summary["newly_succeeded"] == 1 and summary["retries"] == 2
    faults = [r for r in sim.requests if r.fault == kind]
    assert len(faults) == 2
    if kind == "429":
        times = [r.time for r in sim.requests if r.target == "api"]
        assert times[-1] - times[0] >= 1.0  # Retry-After honoured


def test_timeouts_are_survived(sim, sim_cli) -> None:
    task_id = sim.add_task("mountsea", steps=0)
    sim_cli("add", "mountsea", task_id)
    sim.inject("stall", provider="mountsea", delay=3.0)
    code, summary = sync_json(sim_cli, "--no-download", extra_config="")
    assert code == 0, summary
    assert summary["newly_succeeded"] == 1 and summary["retries"] >= 1


def test_retry_budget_ends_the_run(sim, sim_cli) -> None:
    ids = [sim.add_task("mountsea") for _ in range(4)]
    sim_cli("add", "mountsea", *ids)
    sim.inject("503", provider="mountsea", times=-1)
    code, summary = sync_json(sim_cli, "--no-download", extra_config="retry_budget = 3\n")
    assert code == 1
    assert summary["retries"] == 3
    assert len(summary["errors"]) == 4 and all("503" in e for e in summary["errors"])
    assert sim.count("api") == 4 + 3


def test_wrong_token_skips_that_provider_only(sim, sim_cli) -> None:
    ids = {source: sim.add_task(source, steps=0) for source in SOURCES}
    for source, task_id in ids.items():
        sim_cli("add", source, task_id)
    result = sim_cli("sync", "--no-download", env={"ARCHIVER_ACEDATA_TOKEN": "wrong-token-value"})
    assert result.exit_code == 1
    assert "acedata rejected the token" in result.output
    assert result.output.count("rejected the token") == 1
    assert "wrong-token-value" not in result.output
    tasks = tasks_json(sim_cli)
    assert tasks[ids["acedata"]]["status"] == "pending"
    assert all(tasks[ids[s]]["status"] == "succeeded" for s in SOURCES if s != "acedata")


def test_missing_token_is_a_clear_error(sim, sim_cli) -> None:
    task_id = sim.add_task("aimusicapi", steps=0)
    sim_cli("add", "aimusicapi", task_id)
    result = sim_cli("sync", "--no-download", env={"ARCHIVER_AIMUSICAPI_TOKEN": ""})
    assert result.exit_code == 1 and "aimusicapi has no token configured" in result.output


@pytest.mark.sqlite_only
def test_unknown_task_is_recorded_and_not_retried_forever(sim, sim_cli, library: Path) -> None:
    """Not found is an error of each run for a week; then the task fails for good (see
    test_reliability_state for the rule itself)."""

    from archiver.store import NOT_FOUND_POLLS

    for source in SOURCES:
        sim_cli("add", source, f"nope-{source}")
    for _ in range(NOT_FOUND_POLLS):
        code, summary = sync_json(sim_cli, "--no-download", "--now")
        assert code == 1 and all(any(f"nope-{s}" in e for e in summary["errors"]) for s in SOURCES)
    con = sqlite3.connect(library / "archiver.db")
    with con:
        con.execute("UPDATE tasks SET not_found_since = '2000-01-01T00:00:00.000000+00:00'")
    con.close()
    code, summary = sync_json(sim_cli, "--no-download", "--now")
    assert code == 0 and summary["failed"] == len(SOURCES), summary
    tasks = tasks_json(sim_cli)
    for source in SOURCES:
        task = tasks[f"nope-{source}"]
        assert task["status"] == "failed" and task["provider_status"] == "NOT_FOUND", task
        assert task["error"]
    before = sim.count("api")
    sync_json(sim_cli, "--no-download", "--now")
    assert sim.count("api") == before  # terminal now: never polled again


@pytest.mark.sqlite_only
def test_schedule_backs_off_and_now_overrides(sim, sim_cli, library: Path) -> None:
    task_id = sim.add_task("mountsea", steps=50)
    sim_cli("add", "mountsea", task_id)
    sync_json(sim_cli, "--no-download")
    assert sim.count("api") == 1
    sync_json(sim_cli, "--no-download")  # not due yet (5 s interval)
    assert sim.count("api") == 1
    gaps = []
    for _ in range(4):
        sync_json(sim_cli, "--no-download", "--now")
        con = sqlite3.connect(library / "archiver.db")
        last, nxt = con.execute("select last_polled, next_poll_at from tasks").fetchone()
        con.close()
        from datetime import datetime

        gaps.append((datetime.fromisoformat(nxt) - datetime.fromisoformat(last)).total_seconds())
    assert sim.count("api") == 5
    assert gaps[0] >= 5.0 and all(b >= a for a, b in zip(gaps, gaps[1:])) and gaps[-1] > gaps[0]


def test_until_done_timeout(sim, sim_cli) -> None:
    task_id = sim.add_task("acedata", steps=10_000)
    sim_cli("add", "acedata", task_id)
    code, summary = sync_json(sim_cli, "--no-download", "--until-done", "--interval", "0.05", "--timeout", "1")
    assert code == 0 and summary["still_unfinished"] == 1 and summary["passes"] >= 2


@pytest.mark.sqlite_only
def test_second_sync_exits_75_or_waits(sim, sim_cli, library: Path) -> None:
    with LibraryLock(library, None):
        result = sim_cli("sync", "--no-download")
        assert result.exit_code == 75
        assert "another archiver sync is running" in result.output
        waited = sim_cli("sync", "--no-download", "--wait", "0.5")
        assert waited.exit_code == 75
    assert sim_cli("sync", "--no-download").exit_code == 0


@pytest.mark.sqlite_only
def test_json_summary_even_when_the_lock_is_held(sim, sim_cli, library: Path) -> None:
    """A script reading `sync --json` gets one object on every run: why it stopped, its exit code."""
    with LibraryLock(library, None):
        result = sim_cli("sync", "--json")
    assert result.exit_code == 75
    summary = json.loads(result.stdout)
    assert summary["exit_code"] == 75 and summary["files_downloaded"] is None and summary["still_unfinished"] is None
    assert len(summary["errors"]) == 1 and "another archiver sync is running" in summary["errors"][0]
    assert "another archiver sync is running" in result.stderr


def test_json_summary_when_the_library_cannot_be_a_folder(tmp_path: Path) -> None:
    """A file where the library folder should be (exit 2), or under its path (an OSError, exit 1)."""
    from click.testing import CliRunner

    from archiver.cli import cli

    blocker = tmp_path / "afile"
    blocker.write_text("not a library")
    for library, code, said in ((blocker, 2, "is not a folder"), (blocker / "sub", 1, "Not a directory")):
        result = CliRunner().invoke(cli, ["--library", str(library), "sync", "--json"], catch_exceptions=False)
        assert result.exit_code == code, result.output
        summary = json.loads(result.stdout)
        assert summary["exit_code"] == code and said in summary["errors"][0] and summary["tasks_polled"] is None
        assert result.stderr == f"error: {summary['errors'][0]}\n"
    assert blocker.read_text() == "not a library"


def test_timeout_without_until_done_is_a_usage_error(sim, sim_cli) -> None:
    """`--timeout` only bounds `--until-done`: alone it would be ignored, so it is refused."""
    result = sim_cli("sync", "--timeout", "5")
    assert result.exit_code == 2 and "--until-done" in result.output
    assert sim_cli("sync", "--until-done", "--timeout", "5").exit_code == 0


@pytest.mark.sqlite_only
def test_runs_are_recorded_and_tokens_never_stored(sim, sim_cli, library: Path) -> None:
    secret = "sk-live-very-secret-0123456789"
    for provider in ("ccapi", "mountsea", "acedata", "aimusicapi"):
        sim.tokens[provider] = secret
    env = {f"ARCHIVER_{p.upper()}_TOKEN": secret for p in ("ccapi", "mountsea", "acedata", "aimusicapi")}
    for source in SOURCES:
        sim_cli("add", source, sim.add_task(source, steps=0), env=env)
    sim_cli("add", "acedata", "unknown-id", env=env)
    sim.inject("500", provider="mountsea", times=1)
    result = sim_cli("sync", "--json", env=env)
    assert secret not in result.output
    con = sqlite3.connect(library / "archiver.db")
    run = con.execute("select started_at, finished_at, tasks_polled, exit_code from sync_runs").fetchall()
    assert len(run) == 1 and run[0][1] and run[0][2] == 6
    con.close()
    for path in library.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


@pytest.mark.sqlite_only  # the not-found time is moved back by hand
def test_until_done_does_not_wait_a_week_for_a_task_the_provider_does_not_know(sim, sim_cli, library: Path) -> None:
    """A mistyped id stays pending (the provider may not know a new task yet, for up to a week),
    but `--until-done` ends once only tasks unknown for 10 minutes are left, with the not-found
    error (exit 1); a task unknown for less is waited for."""
    known = sim.add_task("acedata", steps=2)
    sim_cli("add", "acedata", known)
    sim_cli("add", "acedata", "no-such-task")
    started = time.monotonic()
    code, summary = sync_json(sim_cli, "--no-download", "--until-done", "--interval", "0.05", "--timeout", "2")
    assert code == 1 and summary["still_unfinished"] == 1, summary
    assert time.monotonic() - started >= 1.9  # unknown for less than 10 minutes: waited for
    con = sqlite3.connect(library / "archiver.db")
    with con:
        earlier = (datetime.now(timezone.utc) - timedelta(minutes=20)).isoformat(timespec="microseconds")
        con.execute("UPDATE tasks SET not_found_since = ? WHERE task_id = 'no-such-task'", (earlier,))
    con.close()
    started = time.monotonic()
    code, summary = sync_json(sim_cli, "--now", "--no-download", "--until-done", "--interval", "0.05", "--timeout", "30")
    assert time.monotonic() - started < 15, summary
    assert code == 1 and summary["still_unfinished"] == 1 and summary["errors"], summary
    assert tasks_json(sim_cli)[known]["status"] == "succeeded"
