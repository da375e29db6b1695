"""A fleet of sync workers on one PostgreSQL catalog: 1, 2 and 4 workers archiving the same clips
from a media host that behaves like a remote CDN (first-byte latency, a per-connection bandwidth
cap), and the API requests of one poll pass over many tasks from 4 workers.

    .venv/bin/python -m bench.fleet            # full: 500 clips, 100,000 tasks
    .venv/bin/python -m bench.fleet --quick    # 200 clips, 10,000 tasks

Also item `fleet` of bench/run.py. Needs the PostgreSQL server binaries (archiver/testkit/postgres.py).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from bench.report import Check, Section, table

REPO = Path(__file__).resolve().parent.parent
LATENCY = 0.08  # seconds to the first byte of each media answer
RATE = 400_000  # bytes a second per connection
JOBS = 4


def _env(sim_env: dict[str, str], url: str, library: Path, work: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    return base | sim_env | {"ARCHIVER_DB": url, "ARCHIVER_LIBRARY": str(library), "PYTHONPATH": str(REPO),
                             "XDG_CONFIG_HOME": str(work / "xdg")}


def _add(env: dict[str, str], source: str, ids: list[str], work: Path) -> None:
    listing = work / f"ids-{source}.txt"
    listing.write_text("\n".join(ids) + "\n", encoding="utf-8")
    subprocess.run([sys.executable, "-m", "archiver", "add", source, "--file", str(listing)], env=env, check=True,
                   capture_output=True)


def _workers(env: dict[str, str], count: int, *args: str) -> float:
    """Start `count` workers at once; the seconds until the last one ends."""
    started = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-m", "archiver", "sync", *args, "--worker-id", f"bench-{n}"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for n in range(count)]
    for proc in procs:
        _out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"a worker exited {proc.returncode}: {err[-500:]}")
    return time.monotonic() - started


def throughput(cluster: object, clips: int, audio_bytes: int, counts: tuple[int, ...], work: Path,
               log: Callable[[str], None]) -> dict[int, tuple[float, int]]:
    """Workers -> (seconds, files archived) for the same `clips` on a fresh catalog each time."""
    from archiver.simulator import Simulator

    results: dict[int, tuple[float, int]] = {}
    for count in counts:
        with Simulator(seed=count, media_latency=LATENCY, media_rate=RATE) as sim:
            ids = [sim.add_task("ccapi-suno", clips=2, steps=0, audio_bytes=audio_bytes) for _ in range(clips // 2)]
            library = work / f"lib-{count}"
            env = _env(sim.env(), cluster.database(), library, work)  # type: ignore[attr-defined]
            _add(env, "ccapi-suno", ids, work)
            seconds = _workers(env, count, "--until-done", "--interval", "0.5", "--timeout", "1500", "--quiet",
                               "--jobs", str(JOBS))
            files = sum(1 for p in library.rglob("*") if p.is_file() and not p.name.startswith("."))
            media = sum(1 for r in sim.requests if r.target == "media")
        results[count] = (seconds, files)
        log(f"fleet: {count} worker(s): {files} files in {seconds:.1f} s ({media} media requests)")
    return results


def polling(cluster: object, tasks: int, workers: int, work: Path, log: Callable[[str], None]) -> tuple[int, int]:
    """(API requests of one pass over `tasks` from `workers` workers, the batch size)."""
    from archiver.providers import get_source
    from archiver.simulator import Simulator

    batch = get_source("ccapi-suno").batch_size
    with Simulator(seed=7) as sim:
        ids = [sim.add_task("ccapi-suno", clips=1, steps=5) for _ in range(tasks)]  # still running after a poll
        env = _env(sim.env(), cluster.database(), work / "lib-poll", work)  # type: ignore[attr-defined]
        _add(env, "ccapi-suno", ids, work)
        before = len(sim.requests)
        seconds = _workers(env, workers, "--no-download", "--quiet")
        requests = sum(1 for r in sim.requests[before:] if r.target == "api")
    log(f"fleet: {tasks} tasks polled by {workers} workers in {requests} requests, {seconds:.1f} s")
    return requests, batch


def run(quick: bool, log: Callable[[str], None] = print) -> Section:
    from archiver.testkit.postgres import Cluster, unavailable

    section = Section(
        title="Fleet: several workers on one PostgreSQL catalog",
        intro=(f"Workers started together on one catalog and one library root; the simulator's media host "
               f"answers after {LATENCY * 1000:.0f} ms and sends at most {RATE / 1e3:.0f} kB/s per connection "
               f"(a remote CDN), each worker downloads {JOBS} files at a time. Throughput is files archived "
               "(audio and cover) per second of wall time."),
        columns=["workers", "clips", "files", "seconds", "files/s", "speed-up"])
    reason = unavailable()
    if reason:
        section.failed = reason
        return section
    clips, tasks = (200, 10_000) if quick else (500, 100_000)  # one worker: ~70 s on 500 clips
    with tempfile.TemporaryDirectory(prefix="archiver-fleet-") as tmp, Cluster() as cluster:
        work = Path(tmp)
        results = throughput(cluster, clips, 120_000, (1, 2, 4), work, log)
        base = results[1][1] / results[1][0]
        for count, (seconds, files) in results.items():
            rate = files / seconds
            section.rows.append([str(count), str(clips), str(files), f"{seconds:.1f}", f"{rate:.1f}",
                                 f"{rate / base:.2f}×"])
        four = results[4][1] / results[4][0] / base
        section.checks.append(Check("throughput with 4 workers ≥ 3× one worker", f"{four:.2f}×", four >= 3))
        requests, batch = polling(cluster, tasks, 4, work, log)
        want = math.ceil(tasks / batch)
        section.checks.append(Check(f"one pass over {tasks:,} tasks from 4 workers: ceil(N / batch_size) = {want} "
                                    "requests in total", f"{requests} requests", requests == want))
    section.notes.append("Task claims of one source are taken one worker at a time, in whole batches, so the "
                         "fleet's requests per pass are those of a single worker (archiver/claims.py).")
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 clips and 10,000 tasks")
    args = parser.parse_args(argv)
    section = run(args.quick)
    if section.failed:
        print(f"could not run: {section.failed}")
        return 1
    print(f"## {section.title}\n\n{section.intro}\n\n{table(section.columns, section.rows)}\n")
    for check in section.checks:
        print(f"- {'PASS' if check.passed else 'FAIL'} {check.target}: {check.measured}")
    return 0 if all(c.passed for c in section.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
