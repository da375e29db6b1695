"""Four `archiver sync` workers (separate processes) on one PostgreSQL catalog and one library root,
against the simulator: every file archived exactly once, one worker SIGKILLed mid-download loses
nothing, its claims are taken over once its lease runs out, and its temporary files are cleared."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from archiver.fs import walk_library
from archiver.simulator import Simulator
from archiver.testkit.kills import base_env

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("ccapi-suno", "mountsea", "acedata", "aimusicapi")
# The CLI, SIGKILLed once the first bytes of its second file transfer are on disk (its `.part` is left).
KILLER = r"""
import os, signal, sys
import archiver.download as download

real, seen = download.fetch_once, [0]


async def fetch_once(client, job, on_bytes):
    with open(os.environ["VICTIM_STARTED"], "a") as log:  # what this worker began to fetch
        log.write(job.url + "\n")
    seen[0] += 1
    if seen[0] != 2:
        return await real(client, job, on_bytes)

    def written(n):
        on_bytes(n)
        os.kill(os.getpid(), signal.SIGKILL)

    return await real(client, job, written)


download.fetch_once = fetch_once
from archiver.cli import cli

cli(sys.argv[1:], prog_name="archiver")
"""


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    from archiver.pgdb import dsn

    with psycopg.connect(dsn(url)) as conn:
        return list(conn.execute(sql).fetchall())


def test_four_workers_archive_every_file_once_and_survive_a_kill(pg_url: str, tmp_path: Path) -> None:
    library = tmp_path / "library"
    with Simulator(media_latency=0.02, media_rate=4_000_000) as sim:
        # every clip has the same title and the layout has no clip id: the workers race for one name
        tasks = {source: [sim.add_task(source, clips=2, steps=0, audio_bytes=150_000, titles=["Same Song"] * 2)
                          for _ in range(6)] for source in SOURCES}
        env = base_env() | sim.env() | {"ARCHIVER_DB": pg_url, "ARCHIVER_LIBRARY": str(library),
                                        "ARCHIVER_LEASE": "2", "PYTHONPATH": str(ROOT),
                                        "ARCHIVER_PATH_TEMPLATE": "{source}/{title}.{ext}",
                                        "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
        for source, ids in tasks.items():
            added = subprocess.run([sys.executable, "-m", "archiver", "add", source, *ids], env=env,
                                   capture_output=True, text=True)
            assert added.returncode == 0, added.stderr
        sync = ("sync", "--until-done", "--interval", "30", "--timeout", "90", "--json", "--jobs", "2")
        started = tmp_path / "victim-started.txt"
        victim = subprocess.Popen([sys.executable, "-c", KILLER, *sync, "--worker-id", "w0"],
                                  env=env | {"VICTIM_STARTED": str(started)}, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60  # the others start once the victim's downloads have begun
        while not any(r.target == "media" for r in sim.requests) and time.monotonic() < deadline:
            time.sleep(0.01)
        workers = [subprocess.Popen([sys.executable, "-m", "archiver", *sync, "--worker-id", f"w{n}"], env=env,
                                    text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                   for n in (1, 2, 3)]
        victim_out, victim_err = victim.communicate(timeout=120)
        assert victim.returncode == -signal.SIGKILL, victim_out + victim_err
        outputs = [w.communicate(timeout=150) for w in workers]
        for worker, (out, err) in zip(workers, outputs):
            assert worker.returncode == 0, err
            assert json.loads(out.splitlines()[-1])["still_unfinished"] == 0
        media = Counter(r.path for r in sim.requests if r.target == "media")

    expected = {c.clip_id for source, ids in tasks.items() for t in ids for c in sim._tasks[(source, t)].clips}
    assert len(expected) >= 6 * len(SOURCES)
    assets = _rows(pg_url, "SELECT c.clip_id, a.kind, a.state, a.path, a.claimed_by FROM assets a "
                           "JOIN clips c ON c.id = a.clip_pk")
    assert {clip for clip, kind, *_ in assets if kind == "audio"} == expected
    assert all(state == "downloaded" and claimed is None for _c, _k, state, _p, claimed in assets), assets
    paths = [path for *_x, path, _claimed in assets]
    assert len(paths) == len({p.casefold() for p in paths})  # no two files at one name
    for source in SOURCES:  # one clip got the plain name, the others a name made unique
        assert sum(p.startswith(f"{source}/Same Song.") for p in paths) in (1, 2)  # its audio, and its cover
    on_disk, parts, _links = walk_library(library)
    assert set(paths) <= on_disk
    assert parts == []  # the killed worker's temporary files were cleared by the others (it is dead)
    assert {p for p in on_disk if not p.endswith((".jpg", ".jpeg", ".png", ".webp"))} - set(paths) == set()
    # every task polled once (all succeed at their first poll), whichever worker polled it
    assert _rows(pg_url, "SELECT DISTINCT polls FROM tasks") == [(1,)]
    # no file downloaded twice, except what the killed worker had started (taken over by another)
    again = {path for path, count in media.items() if count > 1}
    victim_started = {urlsplit(url).path for url in started.read_text().split()}
    assert again <= victim_started, (again, victim_started)
    workers = dict((name, (finished, code)) for name, finished, code in
                   _rows(pg_url, "SELECT name, finished_at, exit_code FROM workers"))
    assert set(workers) == {"w0", "w1", "w2", "w3"}
    assert workers["w0"][0] is None  # it never finished: its claims lapsed and were taken over
    assert all(workers[f"w{n}"][1] == 0 for n in (1, 2, 3))
    stats = subprocess.run([sys.executable, "-m", "archiver", "stats"], env=env, capture_output=True, text=True)
    assert stats.returncode == 0 and "w0" in stats.stdout and "w3" in stats.stdout, stats.stdout + stats.stderr
