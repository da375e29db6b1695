"""Datasette itself over HTTP on 127.0.0.1: its search box uses the library's full-text index,
and the way docs/browsing.md says to serve a library keeps answering while a sync writes to it."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import create_engine, text

from archiver.migrations import STEPS
from archiver.simulator import Simulator
from archiver.store import Store
from conftest import sync_now

pytest.importorskip("datasette")

DB = "archiver.db"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, timeout: float = 10.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


@contextmanager
def datasette(db: Path, *options: str) -> Iterator[str]:
    """`datasette serve DB` as a user runs it (the command docs/browsing.md gives); yields its URL."""
    port = free_port()
    log = db.parent.parent / f"datasette-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "datasette", "serve", str(db), *options,
                                 "--host", "127.0.0.1", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(f"{base}/-/versions.json", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "datasette did not start: " + log.read_text(errors="replace")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def search(base: str, word: str) -> list[dict[str, Any]]:
    status, body = get(f"{base}/archiver/clips.json?_search={word}&_shape=array&_size=max")
    assert status == 200, body
    return json.loads(body)


TITLES = {"albatross": ["Albatross at Dawn", "Harbour Lights"], "other": ["Paper Moon", "Glass River"]}


def test_search_box_uses_the_index_of_a_synced_library(sim: Simulator, sim_cli, library: Path) -> None:
    ids = [sim.add_task("acedata", clips=2, steps=0, titles=TITLES["albatross"], lyrics="over the quiet sea"),
           sim.add_task("acedata", clips=2, steps=0, titles=TITLES["other"], lyrics="an albatross sings"),
           sim.add_task("acedata", clips=2, steps=0, titles=TITLES["other"], lyrics="nothing to see here")]
    assert sim_cli("add", "acedata", *ids).exit_code == 0
    code, summary = sync_now(sim_cli)
    assert code == 0, summary
    con = sqlite3.connect(library / DB)
    expected = {r[0] for r in con.execute(
        "SELECT clip_id FROM clips WHERE title LIKE '%albatross%' OR lyrics LIKE '%albatross%'")}
    total = con.execute("SELECT count(*) FROM clips").fetchone()[0]
    con.close()
    assert len(expected) == 3 and total == 6
    with datasette(library / DB) as base:
        assert {row["clip_id"] for row in search(base, "albatross")} == expected
        assert [row["title"] for row in search(base, "harbour")] == ["Harbour Lights"]
        assert search(base, "zeppelin") == []
        status, page = get(f"{base}/archiver/clips")
        assert status == 200 and 'name="_search"' in page  # the search box is shown


def test_search_box_after_upgrading_an_older_library(tmp_path: Path) -> None:
    """A library made before this schema step: the upgrade recreates and refills the index."""
    db = tmp_path / "old" / DB
    db.parent.mkdir()
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        for number, step in enumerate(STEPS[:3], start=1):
            step(conn)
            conn.execute(text(f"PRAGMA user_version = {number}"))
    engine.dispose()
    con = sqlite3.connect(db)
    con.executescript("""
        INSERT INTO tasks (id, source, task_id, status, polls, idle_polls, poll_errors)
            VALUES (1, 'acedata', 'old-task', 'succeeded', 1, 0, 0);
        INSERT INTO clips (id, source, clip_id, task_pk, title, tags, lyrics)
            VALUES (1, 'acedata', 'c1', 1, 'Paper Moons', 'dream pop', 'the albatross sings'),
                   (2, 'acedata', 'c2', 1, 'Glass River', 'folk', 'quiet water'),
                   (3, 'acedata', 'c3', 1, 'Albatross', 'folk', 'wind');""")
    con.commit()
    con.close()
    with Store(f"sqlite:///{db}"):
        pass  # opening for writing upgrades it, as the next sync would
    with datasette(db) as base:
        assert sorted(row["clip_id"] for row in search(base, "albatross")) == ["c1", "c3"]
        assert [row["clip_id"] for row in search(base, "water")] == ["c2"]


def test_datasette_as_documented_answers_throughout_a_sync(sim: Simulator, sim_cli, library: Path) -> None:
    """docs/browsing.md's command for a library a sync may be writing: every request succeeds."""
    docs = (Path(__file__).parent.parent / "docs" / "browsing.md").read_text(encoding="utf-8")
    assert "with plain `datasette archiver.db`" in docs  # the command this test runs
    assert sim_cli("add", "ccapi-suno", sim.add_task("ccapi-suno", clips=2, steps=0)).exit_code == 0
    assert sync_now(sim_cli)[0] == 0
    sources = ("ccapi-suno", "ccapi-producer", "mountsea", "acedata", "aimusicapi")
    for source in sources:
        assert sim_cli("add", source, *[sim.add_task(source, clips=3, steps=2) for _ in range(3)]).exit_code == 0
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}, **sim.env(),
           "ARCHIVER_LIBRARY": str(library)}
    with datasette(library / DB) as base:
        sync = subprocess.Popen([sys.executable, "-m", "archiver", "sync", "--now", "--until-done",
                                 "--interval", "0.05", "--timeout", "120", "--quiet"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        pages = ["/archiver/clips.json?_size=max", "/archiver/tracks.json?_facet=source",
                 "/archiver/task_summary.json", "/archiver/assets.json?_size=max",
                 "/archiver.json?sql=select+count(*)+as+n+from+clips", "/archiver/clips.json?_search=the"]
        answers: list[tuple[str, int, str]] = []
        during = 0
        while sync.poll() is None:
            for page in pages:
                status, body = get(base + page, timeout=30)
                answers.append((page, status, body))
                during += sync.poll() is None
        out, err = sync.communicate()
        assert sync.returncode == 0, err.decode(errors="replace")
        status, body = get(base + "/archiver.json?sql=select+count(*)+as+n+from+clips&_shape=array")
    failed = [(page, status, body[:300]) for page, status, body in answers if status != 200]
    assert not failed, failed
    assert not [a for a in answers if "malformed" in a[2]]
    assert during >= 12, f"only {during} requests while the sync ran"
    counts = [json.loads(body)["rows"][0][0] for page, _, body in answers if page.startswith("/archiver.json")]
    assert counts == sorted(counts) and counts[0] >= 2  # never a step back
    assert len(set(counts)) > 2  # and it saw the rows arrive while the sync ran
    assert status == 200 and json.loads(body) == [{"n": 2 + 3 * 3 * 4 + 3 * 1}]
