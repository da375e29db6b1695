"""A fleet's leases against a real PostgreSQL server: judged by the server's clock whatever a host's
clock says, a worker that stalled past its lease records nothing of the work another took over,
and of workers started at once under one name exactly one goes on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from archiver import claims, folder_art, models
from archiver.claims import Fleet, part_tag
from archiver.config import Config
from archiver.errors import LockHeld
from archiver.fs import sha256_file, walk_library
from archiver.records import ClipRecord, PollOutcome, Status, TaskRecord
from archiver.simulator import Simulator
from archiver.store import Store
from archiver.testkit.kills import base_env

ROOT = Path(__file__).resolve().parent.parent
LAPSED = "2000-01-01T00:00:00.000000+00:00"  # what the passing of a lease does to its end


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    from archiver.pgdb import dsn

    with psycopg.connect(dsn(url)) as conn:
        cursor = conn.execute(sql)
        return list(cursor.fetchall()) if cursor.description else []


def _lease_left(url: str, where: str) -> list[float]:
    """Seconds from the server's clock to the end of each lease of the rows `where` selects."""
    return [float(left) for (left,) in _rows(url, f"""
        SELECT EXTRACT(EPOCH FROM (lease_until::timestamptz - clock_timestamp())) FROM (
            SELECT lease_until, claimed_by AS name FROM tasks UNION ALL SELECT lease_until, claimed_by FROM assets
            UNION ALL SELECT lease_until, claimed_by FROM provider_slots UNION ALL SELECT lease_until, name FROM workers
        ) AS leases WHERE {where}""")]


def _skew(monkeypatch: pytest.MonkeyPatch, offset: timedelta) -> None:
    """This host's clock runs `offset` off, for every archiver module that reads it (the server's stays true)."""
    real = models.utcnow
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("archiver") and getattr(module, "utcnow", None) is real:
            monkeypatch.setattr(module, "utcnow", lambda: real() + offset)


def _catalog(store: Store) -> None:
    store.add_tasks("mountsea", ["m1", "m2"])
    store.add_tasks("acedata", ["a1"])
    store.apply([TaskRecord("ccapi-suno", "done", Status.SUCCEEDED, clips=(
        ClipRecord("c1", title="One", audio_url="http://127.0.0.1:9/one.mp3", image_url="http://127.0.0.1:9/one.jpg"),
    ))])


def test_a_skewed_host_clock_neither_steals_live_claims_nor_stretches_its_own(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store(pg_url) as store:
        _catalog(store)
        honest = Fleet(store.engine, "honest")
        honest.check_name()
        assert len(honest.claim_tasks("mountsea", 10, ignore_schedule=True, pass_start=models.utcnow())) == 2
        assert len(honest.claim_clips(10)) == 2
        assert honest._take_slot("acedata", 1) == 0

        _skew(monkeypatch, timedelta(hours=2))  # by this clock honest's leases ran out long ago
        ahead = Fleet(store.engine, "ahead")
        ahead.check_name()
        assert ahead.claim_tasks("mountsea", 10, ignore_schedule=True, pass_start=models.utcnow()) == []
        assert ahead.claim_clips(10) == []
        assert ahead._take_slot("acedata", 1) is None
        with pytest.raises(LockHeld, match="already running"):
            Fleet(store.engine, "honest").check_name()
        with pytest.raises(LockHeld, match="honest"):
            ahead.check_alone("retagging")
        # its own claims last a lease by the server's clock, not until two hours from now
        assert len(ahead.claim_tasks("acedata", 10, ignore_schedule=True, pass_start=models.utcnow())) == 1
        ahead.heartbeat()
        left = _lease_left(pg_url, "name = 'ahead'")
        assert len(left) == 2 and all(55 < s <= 61 for s in left), left

        _skew(monkeypatch, timedelta(hours=-2))  # by this clock its claims would have lapsed already
        behind = Fleet(store.engine, "behind")
        behind.check_name()
        left = _lease_left(pg_url, "name = 'behind'")
        assert len(left) == 1 and 55 < left[0] <= 61, left
        assert not behind.claim_tasks("acedata", 10, ignore_schedule=True, pass_start=behind.server_now())
        # a poll recorded on this host is due again after its interval (300 s, doubled for a poll
        # that changed nothing) by the server's clock, not two hours earlier
        store.fleet = ahead  # the worker that claimed a1
        store.record_polls("acedata", [], {"a1": PollOutcome.ok()}, 300.0, 3600.0)
    (due,) = _rows(pg_url, "SELECT EXTRACT(EPOCH FROM (next_poll_at::timestamptz - clock_timestamp())) "
                           "FROM tasks WHERE task_id = 'a1'")
    assert 550 < float(due[0]) <= 601


def test_a_stalled_worker_records_nothing_another_took_over(pg_url: str) -> None:
    """Its leases lapsed while it stalled and B took its claims: A's results are dropped, B's kept."""
    warned: list[str] = []
    with Store(pg_url) as store_a, Store(pg_url) as store_b:
        _catalog(store_a)
        store_a.fleet, store_b.fleet = Fleet(store_a.engine, "A"), Fleet(store_b.engine, "B")
        store_a.fleet.warn = warned.append
        assets = store_a.fleet.claim_clips(10)
        tasks = store_a.fleet.claim_tasks("mountsea", 10, ignore_schedule=True, pass_start=models.utcnow())
        assert len(assets) == 2 and len(tasks) == 2
        _rows(pg_url, f"UPDATE assets SET lease_until = '{LAPSED}'")  # A stalls past its lease ...
        _rows(pg_url, f"UPDATE tasks SET lease_until = '{LAPSED}' WHERE claimed_by = 'A'")
        assert store_b.fleet.claim_clips(10) == assets  # ... and B takes the work over
        assert len(store_b.fleet.claim_tasks("mountsea", 10, ignore_schedule=True, pass_start=models.utcnow())) == 2

        store_a.fleet.heartbeat()  # A wakes: it renews nothing of B's and notices the loss
        assert all(55 < left <= 61 for left in _lease_left(pg_url, "name = 'B'"))
        assert len(warned) == 1 and store_a.fleet.lost == set(assets)
        lost = store_a.assets_done([(assets[0], "A/one.mp3", 10, "a" * 64, True, None)])
        assert lost == {assets[0]: None}  # not archived yet: B's to do
        assert not store_a.asset_failed(assets[1], "A's transfer broke")
        assert not store_a.keep_claims(assets)
        result, _given_up, recorded = store_a.record_polls("mountsea", [TaskRecord("mountsea", "m1", Status.FAILED)],
                                                           {"m1": PollOutcome.ok(), "m2": PollOutcome.ok()}, 60, 600)
        assert recorded == {} and result.newly_failed == 0
        assert _rows(pg_url, "SELECT state, path, attempts, claimed_by FROM assets ORDER BY id") == [
            ("pending", None, 0, "B"), ("pending", None, 0, "B")]
        assert _rows(pg_url, "SELECT DISTINCT status, polls, claimed_by FROM tasks WHERE source = 'mountsea'") == [
            ("pending", 0, "B")]
        assert warned and all("taken over by another worker" in w for w in warned)

        assert store_b.assets_done([(assets[0], "B/one.mp3", 10, "b" * 64, True, None)]) == {}
        assert store_b.keep_claims(assets)
        _rows(pg_url, "UPDATE assets SET claimed_by = NULL")  # B is done and gives its claims back
        assert store_a.assets_done([(assets[0], "A/one.mp3", 10, "a" * 64, True, None)]) == {assets[0]: "B/one.mp3"}
    assert _rows(pg_url, f"SELECT path, sha256 FROM assets WHERE id = {assets[0]}") == [("B/one.mp3", "b" * 64)]


def test_workers_started_at_once_under_one_name_let_one_go_on(pg_url: str) -> None:
    with Store(pg_url) as store:
        gate = threading.Barrier(6)
        outcomes: list[str] = []

        def start() -> None:
            fleet = Fleet(store.engine, "nas-1")
            gate.wait()
            try:
                fleet.check_name()
                outcomes.append("goes on")
            except LockHeld:
                outcomes.append("exits 75")

        threads = [threading.Thread(target=start) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert sorted(outcomes) == ["exits 75"] * 5 + ["goes on"]


def _sync(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "archiver", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _suspend_mid_audio(sim: Simulator, pg_url: str, tmp_path: Path,
                       *extra: str) -> tuple[dict[str, str], subprocess.Popen[str], float]:
    """Worker A (1 s leases) syncing one clip into tmp_path/library, SIGSTOPped while its audio
    transfers (a suspended VM): the environment for more commands, A (to be continued), and the
    deadline, a minute from A's start, by which the test's waits must be over."""
    task = sim.add_task("acedata", clips=1, steps=0, audio_bytes=400_000)
    env = base_env() | sim.env() | {"ARCHIVER_DB": pg_url, "ARCHIVER_LIBRARY": str(tmp_path / "library"),
                                    "ARCHIVER_LEASE": "1", "PYTHONPATH": str(ROOT),
                                    "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert _sync(env, "add", "acedata", task).wait(60) == 0
    a = _sync(env, "sync", "--worker-id", "A", "--jobs", "1", *extra)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(r.target == "media" and not r.path.endswith(".jpg")
                                                  for r in sim.requests):
        time.sleep(0.01)
    time.sleep(0.3)
    os.kill(a.pid, signal.SIGSTOP)
    return env, a, deadline


def test_a_worker_suspended_mid_download_leaves_the_file_to_the_one_that_took_over(
        pg_url: str, tmp_path: Path) -> None:
    """SIGSTOP (a suspended VM) in the middle of a transfer, B takes the clip over and archives it,
    then A wakes and finishes its transfer: it places and records nothing, and writes into no file of B's."""
    library = tmp_path / "library"
    with Simulator(media_rate=200_000) as sim:
        env, a, _deadline = _suspend_mid_audio(sim, pg_url, tmp_path)
        try:
            b = _sync(env, "sync", "--worker-id", "B", "--until-done", "--timeout", "60", "--json", "--jobs", "1")
            out, err = b.communicate(timeout=90)
            assert b.returncode == 0, err
            assert json.loads(out.splitlines()[-1])["files_downloaded"] == 2
        finally:
            os.kill(a.pid, signal.SIGCONT)
        _out, a_err = a.communicate(timeout=90)
    assert a.returncode == 0, a_err
    assert "taken over by another worker" in a_err
    rows = _rows(pg_url, "SELECT path, sha256, state FROM assets")
    assert len(rows) == 2 and all(state == "downloaded" for *_x, state in rows), rows
    for path, digest, _state in rows:  # what B recorded is what is on disk: nobody wrote into it since
        assert sha256_file(library / path)[1] == digest
    files, parts, _links = walk_library(library)
    assert files == {path for path, *_x in rows}  # no second copy, and no temporary file of A's left
    assert parts == []




def test_temporary_files_of_dead_workers_are_cleared_and_a_live_workers_kept(pg_url: str, tmp_path: Path) -> None:
    """A SIGKILLed worker's temporary files would stay for good (default names never run again):
    the others clear those of every worker not live, and never touch a live one's."""
    library = tmp_path / "library"
    (library / "acedata" / "t1").mkdir(parents=True)
    with Store(pg_url) as store:
        fleets = {name: Fleet(store.engine, name) for name in ("live", "lapsed", "finished", "sweeper")}
        for fleet in fleets.values():
            fleet.check_name()
        fleets["finished"].finish(0)
        _rows(pg_url, f"UPDATE workers SET lease_until = '{LAPSED}' WHERE name = 'lapsed'")
        owners = [*fleets, "never-registered"]
        for name in owners:
            tag = part_tag(name)
            for rel in (f"Song.mp3{tag}.part", f"Song{tag}.~tag.part", f"acedata/t1/cover.jpg{tag}.part"):
                (library / rel).write_bytes(name.encode())
        (library / "Other.mp3.part").write_bytes(b"a lone sync's, or from before worker tags")
        (library / "Song.mp3").write_bytes(b"an archived file")

        done = threading.Event()

        def take_name() -> None:
            Fleet(store.engine, "lapsed").check_name()
            done.set()

        restart = threading.Thread(target=take_name)  # the dead worker's name, taken again meanwhile
        real_discard = claims.discard

        def discard(paths: Any) -> None:
            restart.start()
            assert not done.wait(1.0), "a name was taken while dead workers' files were being removed"
            real_discard(paths)

        claims.discard = discard  # type: ignore[assignment]
        try:
            fleets["sweeper"].clear_parts(walk_library(library)[1])
        finally:
            claims.discard = real_discard
        restart.join(30)
        assert done.is_set()
    left = sorted(p.relative_to(library).as_posix() for p in library.rglob("*") if p.is_file())
    tag = part_tag("live")
    assert left == sorted(["Other.mp3.part", "Song.mp3", f"Song.mp3{tag}.part", f"Song{tag}.~tag.part",
                           f"acedata/t1/cover.jpg{tag}.part"])


def test_a_worker_that_wakes_to_find_its_temporary_files_cleared_fails_them_cleanly(
        pg_url: str, tmp_path: Path) -> None:
    """Suspended mid-download past its lease, A is dead: its temporary files are cleared while it
    still holds its claims. Woken, it fails each file with a clear error and leaves nothing behind
    (no file in place, no temporary file); the next run archives them."""
    library = tmp_path / "library"
    with Simulator(media_rate=200_000) as sim:
        env, a, deadline = _suspend_mid_audio(sim, pg_url, tmp_path, "--json")
        try:
            while not _rows(pg_url, "SELECT 1 FROM workers WHERE name = 'A' "
                                    "AND lease_until::timestamptz <= clock_timestamp()"):
                assert time.monotonic() < deadline, "A's lease never ran out"
                time.sleep(0.05)
            parts = walk_library(library)[1]
            assert len(parts) == 2 and all(part_tag("A") in p.name for p in parts), parts  # its cover, its audio
            with Store(pg_url) as store:
                Fleet(store.engine, "B").clear_parts(parts)
            assert walk_library(library)[1] == []
        finally:
            os.kill(a.pid, signal.SIGCONT)
        out, err = a.communicate(timeout=90)
        assert a.returncode == 1, err
        assert json.loads(out.splitlines()[-1])["downloads_failed"] == 2
        assert err.count("was removed before it was placed") == 2, err
        rows = _rows(pg_url, "SELECT state, path, last_error, claimed_by FROM assets")
        assert [(state, path, claimed) for state, path, _e, claimed in rows] == [("failed", None, None)] * 2
        assert all("temporary file" in error and "will retry" in error for _s, _p, error, _c in rows), rows
        assert walk_library(library)[:2] == (set(), [])  # nothing placed, nothing half-written left

        b = _sync(env, "sync", "--worker-id", "B", "--jobs", "1", "--json")
        out, err = b.communicate(timeout=90)
        assert b.returncode == 0, err
    rows = _rows(pg_url, "SELECT path, sha256, state FROM assets")
    assert len(rows) == 2 and all(state == "downloaded" for *_x, state in rows), rows
    for path, digest, _state in rows:
        assert sha256_file(library / path)[1] == digest
    assert walk_library(library)[:2] == ({path for path, *_x in rows}, [])


# `archiver sync` whose files are taken over, the moment before it records them, by a worker B that
# recorded them at other paths (A stalled past its lease between placing and recording).
TAKEN_OVER = r"""
import sys
import psycopg
import archiver.archive as archive
from archiver.pgdb import dsn

real = archive.fsync_dirs


def fsync_dirs(folders):
    with psycopg.connect(dsn(sys.argv[1])) as conn:
        for kind, name, data in (("audio", "Elsewhere.mp3", b"B's song"), ("image", "Elsewhere.jpg", b"B's cover")):
            (archive.Path(sys.argv[2]) / name).write_bytes(data)
            conn.execute("UPDATE assets SET claimed_by = 'B', state = 'downloaded', path = %s, size = %s, "
                         "sha256 = %s WHERE kind = %s", (name, len(data), archive.sha256_file(
                             archive.Path(sys.argv[2]) / name)[1], kind))
    return real(folders)


archive.fsync_dirs = fsync_dirs
from archiver.cli import cli

cli(sys.argv[3:], prog_name="archiver")
"""


def test_a_file_recorded_elsewhere_by_the_worker_that_took_it_over_is_removed_with_its_lyrics(
        pg_url: str, tmp_path: Path) -> None:
    library = tmp_path / "library"
    config = tmp_path / "config.toml"
    config.write_text('lyrics_sidecar = true\npath_template = "{title}.{ext}"\n', encoding="utf-8")
    with Simulator() as sim:
        task = sim.add_task("acedata", clips=1, steps=0, titles=["Song"], lyrics="la la la", audio_format="mp3")
        env = base_env() | sim.env() | {"ARCHIVER_DB": pg_url, "ARCHIVER_LIBRARY": str(library),
                                        "ARCHIVER_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
        assert _sync(env, "add", "acedata", task).wait(60) == 0
        a = subprocess.run([sys.executable, "-c", TAKEN_OVER, pg_url, str(library), "sync", "--worker-id", "A"],
                           env=env, text=True, capture_output=True, timeout=90)
    assert a.returncode == 0, a.stderr
    assert "2 file(s) it was archiving were taken over by another worker" in a.stderr, a.stderr
    assert sorted(_rows(pg_url, "SELECT path, state FROM assets")) == [("Elsewhere.jpg", "downloaded"),
                                                                      ("Elsewhere.mp3", "downloaded")]
    # A's song, its cover and the lyrics sidecar it wrote are gone; B's files are as B recorded them
    files, parts, _links = walk_library(library)
    assert (files, parts) == ({"Elsewhere.mp3", "Elsewhere.jpg"}, [])
    assert (library / "Elsewhere.mp3").read_bytes() == b"B's song"


def test_two_workers_writing_one_folders_cover_at_once_spoil_neither_file(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each writes under its own temporary name, and the first cover placed stays: with one shared
    `cover.jpg.part`, one would remove the other's mid-write and that one fail (or place the other's)."""
    library = tmp_path / "library"
    folder = library / "acedata" / "t1"
    folder.mkdir(parents=True)
    (folder / "Song.mp3").write_bytes(b"song")
    (folder / "Song.jpg").write_bytes(b"\xff\xd8\xff the task's cover")
    config = Config(library=library, db_url=pg_url, providers={}, path_template="{source}/{task_id}/{title}.{ext}")
    with Store(pg_url) as store_a, Store(pg_url) as store_b:
        store_a.apply([TaskRecord("acedata", "t1", Status.SUCCEEDED, clips=(ClipRecord(
            "c1", title="Song", audio_url="http://127.0.0.1:9/s.mp3", image_url="http://127.0.0.1:9/s.jpg"),))])
        for kind, name in (("audio", "Song.mp3"), ("image", "Song.jpg")):
            _rows(pg_url, f"UPDATE assets SET state = 'downloaded', path = 'acedata/t1/{name}', "
                          f"sha256 = '{sha256_file(folder / name)[1]}' WHERE kind = '{kind}'")
        store_a.fleet, store_b.fleet = Fleet(store_a.engine, "A"), Fleet(store_b.engine, "B")
        (task_pk,) = _rows(pg_url, "SELECT id FROM tasks")[0]
        real_sync, results, raced = folder_art.sync_file, [], threading.Event()

        def sync_file(part: Path) -> None:  # B writes the same folder's cover while A's is half done
            if not raced.is_set():
                raced.set()
                results.append(folder_art.write_folder_covers(config, store_b, {task_pk}))
            real_sync(part)

        monkeypatch.setattr(folder_art, "sync_file", sync_file)
        results.append(folder_art.write_folder_covers(config, store_a, {task_pk}))
    assert [r.warnings for r in results] == [[], []]
    assert sum(r.written for r in results) == 1
    assert (folder / "cover.jpg").read_bytes() == (folder / "Song.jpg").read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == ["Song.jpg", "Song.mp3", "cover.jpg"]


def test_the_catalog_server_going_away_mid_run_stops_it_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The PostgreSQL server dies just as a worker turns to its next clip (renewing its claims):
    the run ends with a clear message and the exit code of a failed run, not an internal error,
    and never shows the password."""
    from click.testing import CliRunner

    from archiver.cli import cli
    from archiver.testkit.postgres import PASSWORD, Cluster, unavailable

    if unavailable():
        pytest.skip(str(unavailable()))
    with Cluster() as cluster, Simulator() as sim:
        tasks = [sim.add_task("acedata", clips=1, steps=0) for _ in range(3)]
        env = {**sim.env(), "ARCHIVER_DB": cluster.database(), "ARCHIVER_LIBRARY": str(tmp_path / "lib")}
        runner = CliRunner()
        added = runner.invoke(cli, ["add", "acedata", *tasks], env=env)
        assert added.exit_code == 0, added.output
        real_keep, calls = claims.Fleet.keep, []

        def keep(self: Fleet, asset_ids: Any) -> bool:
            ids = list(asset_ids)
            calls.append(len(ids))
            if calls.count(2) == 2 and len(ids) == 2:  # the second clip begins (all its files): the server is gone
                cluster.stop()
            return real_keep(self, ids)

        monkeypatch.setattr(claims.Fleet, "keep", keep)
        result = runner.invoke(cli, ["sync", "--jobs", "1"], env=env)
    assert calls.count(2) >= 2, calls
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert "internal error" not in result.output and "database" in result.output.lower(), result.output
    assert PASSWORD not in result.output


def test_a_file_failed_on_a_host_whose_clock_runs_ahead_is_retried_by_the_next_run_elsewhere(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """"Failed in this run, retried in the next" is judged by the server's clock: a failure
    recorded by a host five hours ahead must not look newer than every later run."""
    with Store(pg_url) as store:
        _catalog(store)
        _skew(monkeypatch, timedelta(hours=5))
        ahead = Fleet(store.engine, "ahead")
        ahead.check_name()
        store.fleet = ahead
        claimed = ahead.claim_clips(10)  # the one clip's files
        assert claimed
        for asset_id in claimed:
            assert store.asset_failed(asset_id, "cut off")
        ahead.finish(1)
        monkeypatch.undo()  # this host's clock is right
        later = Fleet(store.engine, "later")  # a run started after the failure, on another host
        later.check_name()
        assert sorted(later.claim_clips(10)) == sorted(claimed)


# `archiver sync` that finds a clip's files complete in place (a run died before recording them)
# while another worker, B, takes their claims over: A must neither record nor touch them.
ADOPTION_TAKEN_OVER = r"""
import sys
import psycopg
import archiver.archive as archive
from archiver.pgdb import dsn

real = archive.find_in_place


def find_in_place(base, clip, asset, target):
    found = real(base, clip, asset, target)
    if found is not None:
        with psycopg.connect(dsn(sys.argv[1])) as conn:
            conn.execute("UPDATE assets SET claimed_by = 'B', lease_until = '2999-01-01T00:00:00.000000+00:00' "
                         "WHERE id = %s", (asset.id,))
    return found


archive.find_in_place = find_in_place
from archiver.cli import cli

cli(sys.argv[2:], prog_name="archiver")
"""


def test_files_found_in_place_under_a_claim_taken_over_are_left_to_the_new_owner(pg_url: str, tmp_path: Path) -> None:
    library = tmp_path / "library"
    with Simulator() as sim:
        task = sim.add_task("acedata", clips=1, steps=0, titles=["Song"], audio_format="mp3")
        env = base_env() | sim.env() | {"ARCHIVER_DB": pg_url, "ARCHIVER_LIBRARY": str(library),
                                        "PYTHONPATH": str(ROOT)}
        assert _sync(env, "add", "acedata", task).wait(60) == 0
        first = subprocess.run([sys.executable, "-m", "archiver", "sync", "--worker-id", "X"], env=env, text=True,
                               capture_output=True, timeout=90)
        assert first.returncode == 0, first.stderr
        files, _parts, _links = walk_library(library)
        kept = {name: (library / name).read_bytes() for name in files}
        assert len(kept) == 2, kept
        # the run that placed them died before recording them: pending again, nobody's claim
        _rows(pg_url, "UPDATE assets SET state = 'pending', path = NULL, sha256 = NULL, size = NULL, "
                      "claimed_by = NULL, lease_until = NULL")
        a = subprocess.run([sys.executable, "-c", ADOPTION_TAKEN_OVER, pg_url, "sync", "--worker-id", "A"],
                           env=env, text=True, capture_output=True, timeout=90)
    assert a.returncode == 0, a.stderr
    assert "taken over by another worker" in a.stderr, a.stderr
    assert "found complete in place were recorded" not in a.stdout + a.stderr
    assert sorted(_rows(pg_url, "SELECT claimed_by, state, path FROM assets")) == [("B", "pending", None)] * 2
    assert {name: (library / name).read_bytes() for name in walk_library(library)[0]} == kept
