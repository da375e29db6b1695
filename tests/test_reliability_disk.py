"""Issue #7, part 7: a full disk stops the sync with one clear message and loses nothing.

Two mechanisms: RLIMIT_FSIZE on the sync process (always available: any write past the limit
fails with EFBIG, as Python ignores SIGXFSZ), and a tiny tmpfs (a real ENOSPC for the files and
the database alike; skipped where mounting is not permitted). Either way the library stays
consistent (every recorded file intact, nothing partial at a final path) and the next run, with
space back, completes. On a PostgreSQL catalog the database is the server's, not on the full
disk: the files' side is tested on both engines.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from archiver.testkit import SYNC_ARGS, Lib, Plan, base_env, check_library, no_tracebacks, spawn

from archiver.simulator import Simulator

CONFIG = "connect_timeout = 2\nread_timeout = 2\n"
LIMITED = "import resource, runpy, sys; n = int(sys.argv.pop(1)); " \
          "resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); sys.argv[0] = 'archiver'; " \
          "runpy.run_module('archiver', run_name='__main__')"


def limited_sync(lib: Lib, max_file_bytes: int) -> tuple[int, str]:
    """`archiver sync --now` whose process may write no file past `max_file_bytes` (set in the
    child itself: preexec_fn is unsafe with the simulator's threads in this process)."""
    env = base_env() | lib.env()
    # One transfer at a time, so the first file over the limit stops a run that has already
    # archived something (covers come before their audio): "stopped midway" is then certain.
    proc = subprocess.run([sys.executable, "-c", LIMITED, str(max_file_bytes), "sync", "--now", "--jobs", "1"],
                          env=env,
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stderr


def library_with_big_files(sim: Simulator, lib: Lib,
                           sources: tuple[str, ...] = ("ccapi-suno", "acedata", "mountsea")) -> Plan:
    """Six tasks, twelve clips: MP3s of 1.2 MB and small M4As, with covers (MountSea has none)."""
    plan = Plan()
    for number in range(6):
        source = sources[number % len(sources)]
        task_id = sim.add_task(source, clips=2, steps=0, audio_bytes=None if source == "acedata" else 1_200_000)
        plan.tasks.append((source, task_id))
        assert lib.cli("add", source, task_id).exit_code == 0
    return plan


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def consistent(lib: Lib) -> None:
    """Whatever the database records is on disk intact; nothing else sits at a final path."""
    assert lib.integrity() == "ok"
    verify = lib.cli("verify")
    assert verify.exit_code == 0, verify.output  # no missing, changed or orphan file


def test_file_size_limit_stops_downloads_with_one_message(tmp_path: Path, pg_catalog: str | None) -> None:
    with Simulator() as sim:
        lib = Lib.create(sim, tmp_path / "fsize", CONFIG, pg_catalog)
        # Sources whose clips have covers: whichever clip comes first, its cover is archived
        # before its audio meets the limit.
        plan = library_with_big_files(sim, lib, sources=("ccapi-suno", "acedata"))
        code, stderr = limited_sync(lib, 1_000_000)
        assert code == 1, stderr
        (line,) = error_lines(stderr)
        assert "File too large" in line and "downloads stopped" in line, stderr
        assert "Traceback" not in stderr
        consistent(lib)
        states = [r["state"] for r in lib.query("SELECT state FROM assets")]
        assert "downloaded" in states and "pending" in states  # stopped midway, nothing marked failed
        done = spawn(lib, *SYNC_ARGS)
        assert done.wait(timeout=300) == 0
        assert check_library(lib, plan).problems == []
        assert no_tracebacks(lib) == []


@pytest.mark.sqlite_only(reason="the SQLite file (or its WAL) cannot grow; a PostgreSQL server keeps its own files")
def test_database_that_cannot_grow_is_one_clear_message(tmp_path: Path) -> None:
    with Simulator() as sim:
        lib = Lib.create(sim, tmp_path / "dbsize", CONFIG)
        plan = library_with_big_files(sim, lib)
        size = max(lib.db.stat().st_size, Path(str(lib.db) + "-wal").stat().st_size
                   if Path(str(lib.db) + "-wal").exists() else 0)
        code, stderr = limited_sync(lib, size + 4096)  # the database (or its WAL) cannot grow much
        assert code == 1, stderr
        (line,) = error_lines(stderr)  # SQLite reports EFBIG as an I/O error, ENOSPC as "full"
        assert "archiver.db" in line and ("disk I/O error" in line or "full" in line), stderr
        assert "Traceback" not in stderr and "internal error" not in stderr
        assert lib.integrity() == "ok"
        done = spawn(lib, *SYNC_ARGS)
        assert done.wait(timeout=300) == 0
        assert check_library(lib, plan).problems == []


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs, or a skip where this process may not mount one."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode(errors='replace').strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_full_filesystem_stops_cleanly_and_the_next_run_completes(tmp_path: Path, small_filesystem: Path,
                                                                  pg_catalog: str | None) -> None:
    with Simulator() as sim:
        lib = Lib.create(sim, tmp_path / "config", CONFIG, pg_catalog)
        lib.root = small_filesystem / "library"
        plan = library_with_big_files(sim, lib)
        proc = spawn(lib, "sync", "--now")
        _out, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 1, stderr
        lines = error_lines(stderr)
        # Whichever write meets the full disk first (a file's or the database's) stops the downloads.
        (stop,) = [line for line in lines if "downloads stopped" in line]
        assert "No space left on device" in stop or "database or disk is full" in stop, stderr
        # The only other thing it may say: that the run's own record could not be saved either.
        assert all("downloads stopped" in line or "database or disk is full" in line for line in lines), stderr
        assert "Traceback" not in stderr and "internal error" not in stderr
        assert lib.integrity() == "ok"
        verify = lib.cli("verify")
        if "database or disk is full" in stop:
            # A file complete at its final path that the full database could not record is listed
            # as an orphan now; the next run adopts it. Nothing recorded is missing or changed.
            assert "0 missing, 0 changed" in verify.output, verify.output
        else:
            assert verify.exit_code == 0, verify.output
        subprocess.run(["mount", "-o", "remount,size=64m", str(small_filesystem)], check=True)  # space is back
        done = spawn(lib, *SYNC_ARGS)
        assert done.wait(timeout=300) == 0
        assert check_library(lib, plan).problems == []
        consistent(lib)  # orphans adopted, nothing fetched twice into another name
