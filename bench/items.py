"""What every item shares (the plan, the run's state), and the polling, idle and memory items.

Each item builds what it needs inside the run's workspace, measures archiver and a plain
reference tool as separate processes, alternating them run by run, and keeps the medians.
Items 1 (downloads) and 5–6 (start-up, the read path) live in download.py and readpath.py.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from archiver.dirstamp import RACY_SECONDS
from archiver.simulator import Simulator

from . import breakdown
from . import peers as peer_tools
from .fixtures import Library, build_library
from .harness import Sample, archiver_command, child_env, measure, median
from .report import Check, Section

MB = 1_000_000
MIB = 1024 * 1024


@dataclass(frozen=True)
class Plan:
    """Sizes and repetitions: the full run and the --quick smoke run."""

    quick: bool
    runs: int  # repetitions of the download comparison and the fast items (medians)
    diag_runs: int  # repetitions of the download rows no target compares archiver with closely
    clips: int  # clips in the download run (audio + cover each)
    audio_bytes: int
    jobs: tuple[int, ...]
    poll_sizes: tuple[int, ...]
    poll_runs: int
    library_clips: int
    big_file: int
    memory_runs: int
    startup_runs: int


FULL = Plan(quick=False, runs=5, diag_runs=3, clips=200, audio_bytes=3_000_000, jobs=(4, 8), poll_sizes=(1000, 5000, 10000),
            poll_runs=5, library_clips=20000, big_file=1024 * MIB, memory_runs=2, startup_runs=15)
QUICK = Plan(quick=True, runs=2, diag_runs=1, clips=40, audio_bytes=3_000_000, jobs=(4,), poll_sizes=(200, 500, 1000),
             poll_runs=1, library_clips=2000, big_file=128 * MIB, memory_runs=1, startup_runs=5)


@dataclass
class Bench:
    """Shared state of one benchmark run."""

    plan: Plan
    work: Path
    nginx: str | None
    log: Callable[[str], None]
    results: dict[str, float] = field(default_factory=dict)  # figures one item passes to another
    cache: Path = field(default_factory=peer_tools.default_cache)  # the peers' venv, reused across runs
    _library: Library | None = None
    _peers: peer_tools.Peers | None = None

    def archiver(self, *args: str, env: dict[str, str], check: bool = True, timeout: float = 900) -> Sample:
        """One measured run of the installed `archiver` command."""
        return measure([*archiver_command(), *args], env=env, check=check, timeout=timeout)

    def config(self, name: str, text: str = "") -> Path:
        """A config file of our own, so the user's ~/.config/archiver never leaks in."""
        path = self.work / f"{name}.toml"
        path.write_text(text)
        return path

    def peers(self) -> peer_tools.Peers:
        """The downloaders of item 1, installed on first use."""
        if self._peers is None:
            self._peers = peer_tools.install(self.cache, self.log)
        return self._peers

    def peer_versions(self) -> dict[str, str]:
        """The versions of the peers this run installed or found, for the report's header."""
        return dict(self._peers.versions) if self._peers else {}

    def library(self) -> Library:
        """The big synthetic library, built once and shared by the idle and browsing items."""
        if self._library is None:
            clips = self.plan.library_clips
            self.log(f"building a library of {clips} archived clips ({2 * clips} files)")
            self._library = build_library(self.work / "big-library", clips)
        return self._library


def ratio(value: float, base: float) -> float:
    """value / base; infinite when the base is zero (a broken reference shows, not a crash)."""
    return value / base if base > 0 else math.inf


def fmt_s(seconds: float) -> str:
    """Seconds with the precision that means something at that size."""
    return f"{seconds:.3f} s" if seconds < 10 else f"{seconds:.1f} s"


def reset(path: Path) -> None:
    """An empty directory at `path`, whatever was there."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


# --- 2. polling cost -----------------------------------------------------------------------------

BATCH_SOURCES = ("ccapi-suno", "acedata")  # both fetch up to batch_size (50) ids per request


def polling(bench: Bench) -> Section:
    """Item 2: requests and CPU of one poll pass over 1k/5k/10k tasks, and its linearity."""
    plan = bench.plan
    section = Section(
        title="Polling cost",
        intro=(f"N unfinished tasks split evenly over the batch sources {', '.join(BATCH_SOURCES)} "
               "(batch_size 50); one `archiver sync --no-download` pass polls them all. Each run "
               "starts from a fresh library holding just the registered ids (`archiver add`, not "
               "timed), so the pass stores every task's first answer. Requests are counted by the "
               f"simulator. CPU is the archiver process's user+system time. Medians of {plan.poll_runs}; "
               "the simulator (a Python server in the runner) is not counted in archiver's CPU."),
        columns=["tasks", "requests", "expected", "wall", "CPU", "CPU per task", "linear fit", "peak RSS"],
    )
    largest = max(plan.poll_sizes)
    points: list[tuple[int, float]] = []
    rows: list[list[str]] = []
    with Simulator() as sim:
        bench.log(f"registering {largest} running tasks in the simulator")
        ids = {source: [sim.add_task(source, steps=10**6, clips=2) for _ in range(largest // len(BATCH_SOURCES))]
               for source in BATCH_SOURCES}
        config = bench.config("polling")
        base_env = child_env(sim.env() | {"ARCHIVER_CONFIG": str(config)})
        for size in plan.poll_sizes:
            share = size // len(BATCH_SOURCES)
            expected = sum(math.ceil(share / 50) for _ in BATCH_SOURCES)
            samples: list[Sample] = []
            counted: list[int] = []
            for run in range(plan.poll_runs):
                bench.log(f"polling {size} tasks, run {run + 1}/{plan.poll_runs}")
                samples.append(_poll_once(bench, sim, base_env, ids, share, size, counted))
            cpu = median([s.cpu for s in samples])
            requests = int(median(counted))
            points.append((size, cpu))
            rows.append([f"{size:,}", str(requests), str(expected), fmt_s(median([s.wall for s in samples])),
                         fmt_s(cpu), f"{cpu / size * 1e6:.0f} µs", "",
                         f"{median([s.maxrss_mib for s in samples]):.0f} MiB"])
            section.checks.append(Check(f"polling: requests per pass for {size:,} tasks = ceil(N / batch_size) per source",
                                        f"{requests} (expected {expected})", requests == expected))
        fixed, per_task = _fit(points)
        profiled = _profile_pass(bench, base_env, ids, largest) if per_task > SLOPE_TARGET else []
    worst = 0.0
    for row, (size, cpu) in zip(rows, points):
        fitted = fixed + per_task * size
        worst = max(worst, abs(cpu - fitted) / fitted)
        row[6] = f"{fmt_s(fitted)} ({(cpu - fitted) / fitted:+.0%})"
    section.rows = rows
    section.checks.append(Check("polling: the pass scales linearly (every size within ±15% of one straight line)",
                                f"CPU = {fixed:.2f} s + {per_task * 1e6:.0f} µs × N; worst deviation {worst:.0%}",
                                worst <= 0.15))
    section.notes.append(f"Least-squares line through the medians: {fixed:.2f} s fixed (start-up: imports, opening "
                         f"the database, the HTTP clients) plus {per_task * 1e6:.0f} µs of archiver CPU per task "
                         "(request share, JSON parsing, normalizing, the upsert and the schedule update). "
                         "CPU per task divides the whole run by N, start-up included.")
    largest_cpu = points[-1][1]
    section.checks.append(Check(f"polling: CPU per polled task ≤ {SLOPE_TARGET * 1e6:.0f} µs (the slope of the line)",
                                f"{per_task * 1e6:.0f} µs ({largest:,}-task pass: {fmt_s(largest_cpu)} CPU, "
                                f"{largest_cpu / largest * 1e6:.0f} µs a task with start-up)", per_task <= SLOPE_TARGET))
    if per_task > SLOPE_TARGET:
        section.notes.append(
            f"**Where the per-task time goes.** The fixed part of the line ({fixed:.2f} s) is start-up; the "
            f"{largest:,}-task pass under cProfile (one extra run; main thread, start-up included, so the import "
            "machinery and the packages' own import code appear), by package, spread over the tasks: "
            + breakdown.describe_profile(profiled, largest_cpu, per=largest) + ".")
    return section


SLOPE_TARGET = 150e-6  # seconds of CPU per polled task, issue 14


def _profile_pass(bench: Bench, base_env: dict[str, str], ids: dict[str, list[str]],
                  size: int) -> list[tuple[str, float]]:
    """One pass over `size` fresh tasks under cProfile: where the per-task time goes."""
    bench.log(f"polling: profiling a {size}-task pass")
    library = bench.work / "poll-library"
    shutil.rmtree(library, ignore_errors=True)
    env = base_env | {"ARCHIVER_LIBRARY": str(library)}
    for source in BATCH_SOURCES:
        id_file = bench.work / f"poll-{source}.txt"
        id_file.write_text("\n".join(ids[source][:size // len(BATCH_SOURCES)]) + "\n")
        bench.archiver("add", source, "--file", str(id_file), env=env)
    groups = breakdown.profile(["sync", "--no-download", "--json"], env, bench.work, sys.executable)
    shutil.rmtree(library, ignore_errors=True)
    return groups


def _poll_once(bench: Bench, sim: Simulator, base_env: dict[str, str], ids: dict[str, list[str]], share: int,
               size: int, counted: list[int]) -> Sample:
    """One pass over `size` fresh tasks; appends the requests the simulator saw to `counted`."""
    library = bench.work / "poll-library"
    shutil.rmtree(library, ignore_errors=True)
    env = base_env | {"ARCHIVER_LIBRARY": str(library)}
    for source in BATCH_SOURCES:
        id_file = bench.work / f"poll-{source}.txt"
        id_file.write_text("\n".join(ids[source][:share]) + "\n")
        bench.archiver("add", source, "--file", str(id_file), env=env)
    before = sim.count("api")
    sample = bench.archiver("sync", "--no-download", "--json", env=env)
    report = json.loads(sample.stdout.strip().splitlines()[-1])
    if report["tasks_polled"] != size or report["exit_code"] != 0:
        raise RuntimeError(f"polled {report['tasks_polled']} of {size}: {report['errors'][:3]}")
    counted.append(sim.count("api") - before)
    shutil.rmtree(library, ignore_errors=True)
    return sample


def _fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of y over x."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0
    return mean_y - slope * mean_x, slope


# --- 3. idle cost --------------------------------------------------------------------------------


def idle(bench: Bench) -> Section:
    """Item 3: a sync with nothing to do on 20,000 archived clips vs on an empty library."""
    plan = bench.plan
    library = bench.library()
    empty = bench.work / "empty-library"
    config = bench.config("idle")
    runs = plan.runs + 4
    section = Section(
        title="Idle cost",
        intro=(f"`archiver sync` with nothing to poll or download, as cron runs it, on a library of "
               f"{library.clips:,} archived clips ({library.files:,} files in {library.directories} folders, "
               "default layout) and on an empty library, beside `python -c pass` on the same interpreter. "
               f"The first sync after the library is built (and left alone for {RACY_SECONDS:.0f} s, as between "
               f"cron runs) is shown separately; the steady state is the median of {runs} runs each, alternating."),
        columns=["command", "first sync", "idle sync (median)", "CPU", "vs empty", "vs python -c pass"],
    )
    env_big = child_env({"ARCHIVER_CONFIG": str(config), "ARCHIVER_LIBRARY": str(library.root)})
    env_empty = child_env({"ARCHIVER_CONFIG": str(config), "ARCHIVER_LIBRARY": str(empty)})
    # As cron finds it: a library at rest. A folder changed within RACY_SECONDS of a walk is not
    # trusted (archiver/dirstamp.py), so syncs right after the build would all walk every file.
    time.sleep(RACY_SECONDS)
    first_empty = bench.archiver("sync", "--json", env=env_empty)
    first_big = bench.archiver("sync", "--json", env=env_big)
    report = json.loads(first_big.stdout.strip().splitlines()[-1])
    if report["files_downloaded"] or report["errors"]:
        raise RuntimeError(f"the synthetic library is not idle: {report}")
    big: list[Sample] = []
    small: list[Sample] = []
    bare: list[Sample] = []
    for run in range(runs):
        bench.log(f"idle run {run + 1}/{runs}")
        bare.append(measure([sys.executable, "-c", "pass"], env=env_empty))
        small.append(bench.archiver("sync", "--json", env=env_empty))
        big.append(bench.archiver("sync", "--json", env=env_big))
    b_wall, e_wall = median([s.wall for s in big]), median([s.wall for s in small])
    p_wall = median([s.wall for s in bare])
    section.rows += [
        ["`python -c pass`", "", fmt_s(p_wall), fmt_s(median([s.cpu for s in bare])), "", "1.00×"],
        ["sync, empty library", fmt_s(first_empty.wall), fmt_s(e_wall), fmt_s(median([s.cpu for s in small])),
         "1.00×", f"{ratio(e_wall, p_wall):.1f}×"],
        [f"sync, {library.clips:,} clips", fmt_s(first_big.wall), fmt_s(b_wall), fmt_s(median([s.cpu for s in big])),
         f"{ratio(b_wall, e_wall):.2f}×", f"{ratio(b_wall, p_wall):.1f}×"],
    ]
    section.checks.append(Check(f"idle: sync of {library.clips:,} clips ≤ 1.5× empty library",
                                f"{ratio(b_wall, e_wall):.2f}× ({fmt_s(b_wall)} vs {fmt_s(e_wall)})",
                                ratio(b_wall, e_wall) <= 1.5))
    met = b_wall <= IDLE_TARGET * p_wall
    section.checks.append(Check(f"idle: cron sync of {library.clips:,} clips ≤ {IDLE_TARGET}× `python -c pass`",
                                f"{ratio(b_wall, p_wall):.1f}× ({fmt_s(b_wall)} vs {fmt_s(p_wall)})", met))
    found = breakdown.imports([*archiver_command(), "sync", "--json"], env_big)
    section.notes.append(f"Heavy modules an idle sync imports: {', '.join(found.heavy) or 'none'}.")
    if not met:
        groups = breakdown.profile(["sync", "--json"], env_big, bench.work, sys.executable)
        clicked = median([measure([sys.executable, "-c", "import click"], env=env_empty).wall for _ in range(runs)])
        section.notes.append(
            f"**Where the idle sync's time goes.** Its floor is `python -c pass` ({fmt_s(p_wall)}), the bound "
            f"{IDLE_TARGET}× that ({fmt_s(IDLE_TARGET * p_wall)}). On top of the interpreter's start, "
            f"{breakdown.describe_imports(found)} (`-X importtime`, one extra run); under cProfile (one extra "
            "run, main thread) by package: " + breakdown.describe_profile(groups, b_wall) + ". "
            f"`python -c \"import click\"` alone, the CLI library every archiver command starts with, takes "
            f"{fmt_s(clicked)} ({ratio(clicked, p_wall):.1f}× `python -c pass`, median of {runs} runs after the "
            f"others), so {fmt_s(b_wall - clicked)} of the idle sync is archiver's own: its modules, the lock, "
            "the database reads, the folder check and the run's record.")
    bench.results["idle_empty"] = e_wall
    return section


IDLE_TARGET = 6  # × python -c pass, issue 14


# --- 4. memory -----------------------------------------------------------------------------------


def memory(bench: Bench) -> Section:
    """Item 4: peak RSS downloading a 1 GiB MP3 vs a 3 MB one (streaming must bound memory)."""
    plan = bench.plan
    size_label = f"{plan.big_file / MIB / 1024:.0f} GiB" if plan.big_file >= 1024 * MIB else f"{plan.big_file / MIB:.0f} MiB"
    section = Section(
        title="Memory",
        intro=(f"Peak RSS (the command's own, via `/usr/bin/time`) of `archiver sync` downloading one clip whose MP3 is "
               f"{size_label}, against the same with a 3 MB MP3 (plus its cover in both cases). The "
               "audio is streamed to disk and hashed as it arrives, checked for length, then given its tags "
               "(built from the source's own tag as the first bytes came) in blocks the file system "
               "inserts in front of the audio, and fsynced. The simulator serves "
               "the file, generating it on the fly. Medians of "
               f"{plan.memory_runs} runs for the big file, {plan.runs} for the small one."),
        columns=["audio file", "wall", "peak RSS", "vs 3 MB"],
    )
    config = bench.config("memory", f"max_file_size = {4 * plan.big_file}\n")
    results: dict[int, list[Sample]] = {}
    with Simulator() as sim:
        env = child_env(sim.env() | {"ARCHIVER_CONFIG": str(config)})
        for size, runs in ((3_000_000, plan.runs), (plan.big_file, plan.memory_runs)):
            task = sim.add_task("ccapi-suno", steps=0, clips=1, audio_bytes=size)
            results[size] = []
            for run in range(runs):
                bench.log(f"memory: {size / MB:.0f} MB file, run {run + 1}/{runs}")
                library = bench.work / "memory-library"
                shutil.rmtree(library, ignore_errors=True)
                lib_env = env | {"ARCHIVER_LIBRARY": str(library)}
                bench.archiver("add", "ccapi-suno", task, env=lib_env)
                sample = bench.archiver("sync", "--json", env=lib_env, timeout=900)
                report = json.loads(sample.stdout.strip().splitlines()[-1])
                if report["files_downloaded"] != 2 or report["bytes_downloaded"] < 0.99 * size:
                    raise RuntimeError(f"memory run fetched {report['files_downloaded']} files: {report['errors'][:3]}")
                results[size].append(sample)
                shutil.rmtree(library, ignore_errors=True)
    small = median([s.maxrss_mib for s in results[3_000_000]])
    big = median([s.maxrss_mib for s in results[plan.big_file]])
    section.rows += [
        ["3 MB", fmt_s(median([s.wall for s in results[3_000_000]])), f"{small:.1f} MiB", ""],
        [size_label, fmt_s(median([s.wall for s in results[plan.big_file]])), f"{big:.1f} MiB",
         f"{big - small:+.1f} MiB"],
    ]
    for jobs in plan.jobs:
        if f"download_rss_{jobs}" in bench.results:
            section.rows.append([f"{plan.clips} clips × {plan.audio_bytes / MB:.0f} MB, --jobs {jobs} (item 1)", "",
                                 f"{bench.results[f'download_rss_{jobs}']:.1f} MiB", ""])
    section.checks.append(Check(f"memory: peak RSS with a {size_label} file ≤ 3 MB file + 30 MB",
                                f"{big - small:+.1f} MiB ({big:.1f} vs {small:.1f} MiB)",
                                (big - small) * MIB <= 30 * MB))
    return section
