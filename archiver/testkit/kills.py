"""Killing syncs: SIGKILL armed at one point of the code or at a random moment, in a loop, so a
test can prove that a run killed anywhere loses nothing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any


from .library import SOURCES, Lib, Plan


# ---------------------------------------------------------------------------- killing syncs

# `python -c KILLER ARGS...`: the CLI with a SIGKILL armed at one point of the code (chosen by the
# RELIABILITY_KILL environment variable, "point:nth"), so a kill provably lands in a given phase.
# This is test code around an unmodified archiver; pure-timing kills complement it.
KILLER = r"""
import os, random, signal, sys, threading

point, nth = os.environ["RELIABILITY_KILL"].split(":")
nth, seen = int(nth), [0]


def due() -> bool:
    seen[0] += 1
    return seen[0] == nth


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


if point in ("before-commit", "after-commit"):
    from sqlalchemy.engine.default import DefaultDialect

    real_commit = DefaultDialect.do_commit

    def do_commit(self, conn):
        if point == "before-commit" and due():
            die()
        real_commit(self, conn)
        if point == "after-commit" and due():
            die()

    DefaultDialect.do_commit = do_commit
elif point in ("before-rename", "after-rename"):
    import archiver.archive as archive

    real_place = archive.place

    def place(part, final, *args, **kwargs):
        if point == "before-rename" and due():
            die()
        real_place(part, final, *args, **kwargs)
        if point == "after-rename" and due():
            die()

    archive.place = place
elif point == "mid-tag":
    import archiver.finishing as finishing

    def killing(real):  # tagging in place, or putting an MP3's tags first (graft; the copy where it cannot)
        def wrapper(*args, **kwargs):
            if due():
                threading.Timer(random.uniform(0, 0.004), die).start()
            return real(*args, **kwargs)
        return wrapper

    finishing.tag_file = killing(finishing.tag_file)
    finishing.write_joined = killing(finishing.write_joined)
    finishing.graft = killing(finishing.graft)
elif point == "mid-download":
    import archiver.download as download

    real_fetch_once = download.fetch_once

    async def fetch_once(*args, **kwargs):
        if due():
            threading.Timer(random.uniform(0, 0.03), die).start()
        return await real_fetch_once(*args, **kwargs)

    download.fetch_once = fetch_once
else:
    raise SystemExit(f"unknown kill point {point}")

from archiver.cli import cli

cli(sys.argv[1:], prog_name="archiver")
"""
KILL_POINTS = ("before-commit", "after-commit", "mid-download", "mid-tag", "before-rename", "after-rename")
SYNC_ARGS = ("sync", "--now", "--until-done", "--interval", "0.05", "--timeout", "60", "--quiet")


def base_env() -> dict[str, str]:
    """This process's environment without any ARCHIVER_* setting of the person running it."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}


def spawn(lib: Lib, *args: str, kill: str | None = None, env: dict[str, str] | None = None,
          **popen: Any) -> subprocess.Popen[str]:
    """`python -m archiver ARGS` (or the killer wrapper) on this library, as cron would run it."""
    env = base_env() | lib.env() | (env or {}) | ({"RELIABILITY_KILL": kill} if kill else {})
    command = [sys.executable, "-c", KILLER, *args] if kill else [sys.executable, "-m", "archiver", *args]
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(command, env=env, text=True, **popen)


@dataclass
class Kill:
    how: str  # a kill point, or "timed"
    phase: str  # what was going on: the point, or what the filesystem and simulator showed
    killed: bool  # False when the process finished before the kill landed
    stderr: str = ""


def timed_kill(lib: Lib, rng: random.Random, window: float) -> Kill:
    """Start a sync, wait until it talks to the simulator, SIGKILL it a random moment later."""
    seen = len(lib.sim.requests)
    proc = spawn(lib, *SYNC_ARGS)
    deadline = time.monotonic() + 30
    while len(lib.sim.requests) == seen and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(rng.uniform(0, window))
    requests = lib.sim.requests[seen:]
    parts = list(lib.root.rglob("*.part"))
    proc.send_signal(signal.SIGKILL)
    _out, err = proc.communicate()
    killed = proc.returncode == -signal.SIGKILL
    if parts:
        phase = "download/tag"
    elif any(r.target == "media" for r in requests):
        phase = "between files"
    elif requests:
        phase = "polling"
    else:
        phase = "startup"
    return Kill("timed", phase, killed, err)


def point_kill(lib: Lib, point: str, nth: int) -> Kill:
    proc = spawn(lib, *SYNC_ARGS, kill=f"{point}:{nth}")
    _out, err = proc.communicate(timeout=120)
    return Kill(point, point, proc.returncode == -signal.SIGKILL, err)


def add_tasks(lib: Lib, plan: Plan, rng: random.Random, count: int) -> None:
    """New work arrives between runs, as it does for a cron job (so later kills still hit work)."""
    for _ in range(count):
        source = rng.choice(SOURCES)
        big = 1_500_000 if source in ("ccapi-suno", "mountsea") and rng.random() < 0.5 else None
        task_id = lib.sim.add_task(source, clips=3, steps=rng.randint(0, 1), audio_bytes=big)
        plan.tasks.append((source, task_id))
        assert lib.cli("add", source, task_id).exit_code == 0


def crash_loop(lib: Lib, plan: Plan, rng: random.Random, kills: int, *, window: float = 2.0,
               new_tasks: int = 2) -> list[Kill]:
    """`kills` SIGKILLs in a row, alternating armed kill points and random moments.

    Media stalls stretch some downloads so timed kills land mid-transfer; a kill point that the
    run never reached (it finished first) is retried with a smaller `nth`, up to a bound.
    """
    done: list[Kill] = []
    attempts = 0
    while len(done) < kills and attempts < kills * 4:
        attempts += 1
        add_tasks(lib, plan, rng, new_tasks)
        if rng.random() < 0.5:
            lib.sim.inject("stall", target="media", delay=rng.uniform(0.2, 0.8), times=rng.randint(1, 3))
            plan.faults["media stall"] += 1
        if attempts % 2:
            point = KILL_POINTS[(attempts // 2) % len(KILL_POINTS)]
            kill = point_kill(lib, point, rng.randint(1, 6))
        else:
            kill = timed_kill(lib, rng, window)
        if kill.killed:
            done.append(kill)
    return done
