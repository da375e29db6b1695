"""The six measurements of issue #8, each returning a report Section with its checks.

Each item builds what it needs inside the run's workspace, measures archiver and a plain
reference tool as separate processes, alternating them run by run, and keeps the medians.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from archiver.simulator import Simulator

from .fixtures import Library, build_library, build_media
from .harness import (REPO, Nginx, Sample, archiver_command, child_env, measure, median)
from .report import Check, Section

MB = 1_000_000
MIB = 1024 * 1024


@dataclass(frozen=True)
class Plan:
    """Sizes and repetitions: the full run and the --quick smoke run."""

    quick: bool
    runs: int  # repetitions of the fast items (medians)
    clips: int  # clips in the download run (audio + cover each)
    audio_bytes: int
    jobs: tuple[int, ...]
    poll_sizes: tuple[int, ...]
    poll_runs: int
    library_clips: int
    big_file: int
    memory_runs: int
    startup_runs: int


FULL = Plan(quick=False, runs=3, clips=200, audio_bytes=3_000_000, jobs=(4, 8), poll_sizes=(1000, 5000, 10000),
            poll_runs=5, library_clips=20000, big_file=1024 * MIB, memory_runs=2, startup_runs=15)
QUICK = Plan(quick=True, runs=2, clips=40, audio_bytes=3_000_000, jobs=(4,), poll_sizes=(200, 500, 1000),
             poll_runs=1, library_clips=2000, big_file=128 * MIB, memory_runs=1, startup_runs=5)


@dataclass
class Bench:
    """Shared state of one benchmark run."""

    plan: Plan
    work: Path
    nginx: str | None
    log: Callable[[str], None]
    results: dict[str, float] = field(default_factory=dict)  # figures one item passes to another
    _library: Library | None = None

    def archiver(self, *args: str, env: dict[str, str], check: bool = True, timeout: float = 900) -> Sample:
        """One measured run of the installed `archiver` command."""
        return measure([*archiver_command(), *args], env=env, check=check, timeout=timeout)

    def config(self, name: str, text: str = "") -> Path:
        """A config file of our own, so the user's ~/.config/archiver never leaks in."""
        path = self.work / f"{name}.toml"
        path.write_text(text)
        return path

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


def _reset(path: Path) -> None:
    """An empty directory at `path`, whatever was there."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


# --- 1. download throughput ---------------------------------------------------------------------


def download(bench: Bench) -> Section:
    """Item 1: archiver sync vs curl --parallel on the same 200 clips served by nginx."""
    plan = bench.plan
    section = Section(
        title="Download throughput",
        intro=(f"{plan.clips} finished clips (a {plan.audio_bytes / MB:.0f} MB MP3 and a cover each, "
               f"{2 * plan.clips} files) served from loopback. `archiver sync --jobs N` runs against "
               "the simulator's API (one batched poll pass) whose payloads point at the media host, "
               "then downloads, checks, hashes, tags, fsyncs and records every file: its wall time "
               "includes start-up, polling and tagging. The reference is `curl --parallel "
               "--parallel-max N` fetching the same URLs to files in the same file system (`-o` per "
               "file, no fsync). `curl + sync` adds the time `sync -f` then takes to put curl's files "
               "on disk, which is the durability archiver pays for before it records a file. The two "
               "`httpx` rows are bench/floor_httpx.py: the same URLs through httpx with nothing else "
               "(stream, sha256, write; no start-up of archiver, polling, tags or fsync), once with "
               "httpx's own transport and once with the libcurl transport archiver uses for media "
               "(`archiver/transport.py`): the floor under archiver's figure. The `diagnostic` rows "
               "(first N only) are bench/ablate.py: the same `archiver sync` with the fsyncs, then "
               "also tagging, switched off, to show what they cost; users have no such switch. Runs "
               "alternate the tools; medians of "
               f"{plan.runs}. MB = 10^6 bytes."),
        columns=["N", "tool", "wall", "MB/s", "CPU", "peak RSS", "vs curl"],
    )
    media_root = bench.work / "media"
    media_root.mkdir()
    nginx = Nginx(bench.nginx, media_root, bench.work / "nginx") if bench.nginx else None
    if nginx is None:
        section.notes.append("**nginx is not installed here: the simulator's own media server (Python) "
                             "served the files instead, so the figures measure it as much as archiver.**")
    with (nginx or _Null()) as server, Simulator(media_base_url=server.base_url if nginx else None) as sim:
        bench.log(f"writing {plan.clips} clips for the media host")
        media = build_media(sim, media_root if nginx else None, clips=plan.clips, audio_bytes=plan.audio_bytes)
        ids = bench.work / "download-ids.txt"
        ids.write_text("\n".join(media.task_ids) + "\n")
        config = bench.config("download")
        env = child_env(sim.env() | {"ARCHIVER_CONFIG": str(config)})
        curl_out = bench.work / "curl-out"
        urls_file = bench.work / "urls.txt"
        urls_file.write_text("\n".join(media.urls) + "\n")
        curl_cfg = bench.work / "curl.cfg"
        curl_cfg.write_text("".join(f'url = "{url}"\noutput = "{curl_out / url.rsplit("/", 1)[1]}"\n'
                                    for url in media.urls))
        total = media.total_bytes
        _curl(bench, curl_cfg, curl_out, plan.jobs[0], len(media.urls))  # warm the page cache
        figures: dict[str, tuple[int, float, float, float, float]] = {}
        for jobs in plan.jobs:
            curl: list[Sample] = []
            synced: list[float] = []
            floor: list[Sample] = []
            floor_curl: list[Sample] = []
            ours: list[Sample] = []
            ablated: dict[str, list[Sample]] = {name: [] for name in ABLATIONS} if not figures else {}
            for run in range(plan.runs):
                bench.log(f"download N={jobs} run {run + 1}/{plan.runs}")
                sample, sync_time = _curl(bench, curl_cfg, curl_out, jobs, len(media.urls))
                curl.append(sample)
                synced.append(sample.wall + sync_time)
                floor.append(_httpx_floor(bench, urls_file, jobs))
                floor_curl.append(_httpx_floor(bench, urls_file, jobs, transport="curl"))
                ours.append(_archiver_download(bench, env, ids, jobs, len(media.urls)))
                for name, samples in ablated.items():
                    samples.append(_archiver_download(bench, env, ids, jobs, len(media.urls), ablation=name))
            c_wall, a_wall = median([s.wall for s in curl]), median([s.wall for s in ours])
            s_wall, f_wall = median(synced), median([s.wall for s in floor])
            fc_wall = median([s.wall for s in floor_curl])
            section.rows += [
                [str(jobs), "curl", fmt_s(c_wall), f"{total / MB / c_wall:.0f}",
                 fmt_s(median([s.cpu for s in curl])), f"{median([s.maxrss_mib for s in curl]):.0f} MiB", "1.00×"],
                [str(jobs), "curl + sync", fmt_s(s_wall), f"{total / MB / s_wall:.0f}", "", "",
                 f"{ratio(s_wall, c_wall):.2f}×"],
                [str(jobs), "httpx, its own transport", fmt_s(f_wall), f"{total / MB / f_wall:.0f}",
                 fmt_s(median([s.cpu for s in floor])), f"{median([s.maxrss_mib for s in floor]):.0f} MiB",
                 f"{ratio(f_wall, c_wall):.2f}×"],
                [str(jobs), "httpx + libcurl transport (floor)", fmt_s(fc_wall), f"{total / MB / fc_wall:.0f}",
                 fmt_s(median([s.cpu for s in floor_curl])),
                 f"{median([s.maxrss_mib for s in floor_curl]):.0f} MiB", f"{ratio(fc_wall, c_wall):.2f}×"],
                [str(jobs), "archiver sync", fmt_s(a_wall), f"{total / MB / a_wall:.0f}",
                 fmt_s(median([s.cpu for s in ours])), f"{median([s.maxrss_mib for s in ours]):.0f} MiB",
                 f"{ratio(a_wall, c_wall):.2f}×"],
            ]
            for name, samples in ablated.items():
                wall = bench.results[f"download_{name}"] = median([s.wall for s in samples])
                section.rows.append([str(jobs), ABLATIONS[name], fmt_s(wall), f"{total / MB / wall:.0f}",
                                     fmt_s(median([s.cpu for s in samples])),
                                     f"{median([s.maxrss_mib for s in samples]):.0f} MiB", f"{ratio(wall, c_wall):.2f}×"])
            figures.setdefault("first", (jobs, c_wall, s_wall, fc_wall, a_wall))
            section.checks.append(Check(f"download: archiver sync ≤ 1.5× curl, N={jobs}",
                                        f"{ratio(a_wall, c_wall):.2f}× ({fmt_s(a_wall)} vs {fmt_s(c_wall)})",
                                        ratio(a_wall, c_wall) <= 1.5))
            bench.results[f"download_rss_{jobs}"] = median([s.maxrss_mib for s in ours])
    section.notes.append(f"Payload: {total / MB:.0f} MB in {len(media.urls)} files; the media host is "
                         + ("nginx (sendfile on, keep-alive, access_log off, 1 worker)." if nginx else
                            "the simulator."))
    jobs, c_wall, s_wall, f_wall, a_wall = figures["first"]
    if a_wall > 1.5 * c_wall:
        imports = median([measure([sys.executable, "-c", IMPORTS.split('"')[1]]).wall for _ in range(3)])
        no_fsync = bench.results.get("download_nofsync", a_wall)
        bare = bench.results.get("download_nofsync-notag", a_wall)
        section.notes.append(
            f"**Where the time goes (N={jobs}), and why the 1.5× target is out of reach here.** Putting "
            f"the bytes on disk before recording them, which archiver promises (a file is fsynced before "
            f"it is renamed into place and recorded) and curl does not do, already costs curl itself "
            f"{ratio(s_wall, c_wall):.1f}× (`curl + sync`): that alone is over the target on this disk. "
            f"archiver's imports (SQLAlchemy, SQLModel/pydantic, httpx) take {fmt_s(imports)} before it "
            f"starts (item 5), {ratio(imports, c_wall):.2f}× of curl's whole run. httpx with the libcurl "
            f"transport moves the files in {ratio(f_wall, c_wall):.1f}× curl's time. Switching off the "
            f"fsyncs takes archiver from {fmt_s(a_wall)} to {fmt_s(no_fsync)}, and tagging as well to "
            f"{fmt_s(bare)} ({ratio(bare, c_wall):.1f}× curl): what remains is start-up, the poll, "
            "per-file Python work on one event loop (the request, the length check, hashing, naming, "
            "the database row), on 2 cores that the transfers also need. What was cut to get here, and "
            "what was tried and not kept, is at the end of this page.")
    return section


class _Null:
    base_url = ""

    def __enter__(self) -> "_Null":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _curl(bench: Bench, cfg: Path, out: Path, jobs: int, files: int) -> tuple[Sample, float]:
    """One curl run into a fresh directory; returns it and how long `sync -f` then took."""
    _reset(out)
    sample = measure(["curl", "--parallel", "--parallel-max", str(jobs), "--silent", "--show-error",
                      "--fail", "--config", str(cfg)], timeout=600)
    got = sum(1 for _ in out.iterdir())
    if got != files:
        raise RuntimeError(f"curl wrote {got} files, expected {files}")
    synced = measure(["sync", "-f", str(out)], timeout=600).wall
    shutil.rmtree(out, ignore_errors=True)
    return sample, synced


def _httpx_floor(bench: Bench, urls: Path, jobs: int, transport: str = "httpx") -> Sample:
    """bench/floor_httpx.py over the same URLs: what the HTTP layer alone costs."""
    out = bench.work / "httpx-out"
    _reset(out)
    sample = measure([sys.executable, str(REPO / "bench" / "floor_httpx.py"), str(urls), str(out), str(jobs),
                      transport], timeout=600)
    measure(["sync", "-f", str(out)], timeout=600)
    shutil.rmtree(out, ignore_errors=True)
    return sample


ABLATIONS = {  # bench/ablate.py: diagnostics for the first N only, not modes a user has
    "nofsync": "diagnostic: archiver sync, no fsync",
    "nofsync-notag": "diagnostic: archiver sync, no fsync, no tags",
}


def _archiver_download(bench: Bench, env: dict[str, str], ids: Path, jobs: int, files: int,
                       ablation: str | None = None) -> Sample:
    library = bench.work / "download-library"
    shutil.rmtree(library, ignore_errors=True)
    env = env | {"ARCHIVER_LIBRARY": str(library)}
    bench.archiver("add", "ccapi-suno", "--file", str(ids), env=env)
    if ablation:
        sample = measure([sys.executable, str(REPO / "bench" / "ablate.py"), ablation, "sync", "--jobs", str(jobs),
                          "--json"], env=env, timeout=900)
    else:
        sample = bench.archiver("sync", "--jobs", str(jobs), "--json", env=env)
    report = json.loads(sample.stdout.strip().splitlines()[-1])
    if report["files_downloaded"] != files or report["exit_code"] != 0:
        raise RuntimeError(f"archiver sync downloaded {report['files_downloaded']} of {files} files: "
                           f"{report['errors'][:3]}")
    measure(["sync", "-f", str(library)], timeout=600)  # no dirty pages left to slow the next run
    shutil.rmtree(library, ignore_errors=True)
    return sample



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
    return section


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
    section = Section(
        title="Idle cost",
        intro=(f"`archiver sync` with nothing to poll or download, on a library of {library.clips:,} "
               f"archived clips ({library.files:,} files in {library.directories} folders, default "
               "layout) and on an empty library. The first sync after the library is built is shown "
               "separately; the steady state is the median of "
               f"{plan.runs + 2} runs each, alternating."),
        columns=["library", "first sync", "idle sync (median)", "CPU", "vs empty"],
    )
    env_big = child_env({"ARCHIVER_CONFIG": str(config), "ARCHIVER_LIBRARY": str(library.root)})
    env_empty = child_env({"ARCHIVER_CONFIG": str(config), "ARCHIVER_LIBRARY": str(empty)})
    first_empty = bench.archiver("sync", "--json", env=env_empty)
    first_big = bench.archiver("sync", "--json", env=env_big)
    report = json.loads(first_big.stdout.strip().splitlines()[-1])
    if report["files_downloaded"] or report["errors"]:
        raise RuntimeError(f"the synthetic library is not idle: {report}")
    big: list[Sample] = []
    small: list[Sample] = []
    for run in range(plan.runs + 2):
        bench.log(f"idle run {run + 1}/{plan.runs + 2}")
        small.append(bench.archiver("sync", "--json", env=env_empty))
        big.append(bench.archiver("sync", "--json", env=env_big))
    b_wall, e_wall = median([s.wall for s in big]), median([s.wall for s in small])
    section.rows += [
        ["empty", fmt_s(first_empty.wall), fmt_s(e_wall), fmt_s(median([s.cpu for s in small])), "1.00×"],
        [f"{library.clips:,} clips", fmt_s(first_big.wall), fmt_s(b_wall), fmt_s(median([s.cpu for s in big])),
         f"{ratio(b_wall, e_wall):.2f}×"],
    ]
    section.checks.append(Check(f"idle: sync of {library.clips:,} clips ≤ 1.5× empty library",
                                f"{ratio(b_wall, e_wall):.2f}× ({fmt_s(b_wall)} vs {fmt_s(e_wall)})",
                                ratio(b_wall, e_wall) <= 1.5))
    bench.results["idle_empty"] = e_wall
    return section


# --- 4. memory -----------------------------------------------------------------------------------


def memory(bench: Bench) -> Section:
    """Item 4: peak RSS downloading a 1 GiB MP3 vs a 3 MB one (streaming must bound memory)."""
    plan = bench.plan
    size_label = f"{plan.big_file / MIB / 1024:.0f} GiB" if plan.big_file >= 1024 * MIB else f"{plan.big_file / MIB:.0f} MiB"
    section = Section(
        title="Memory",
        intro=(f"Peak RSS (the command's own, via `/usr/bin/time`) of `archiver sync` downloading one clip whose MP3 is "
               f"{size_label}, against the same with a 3 MB MP3 (plus its cover in both cases). The "
               "audio is streamed to disk, checked for length, tagged in place by mutagen (which moves "
               "the audio in 1 MiB steps when the tag grows), hashed and fsynced. The simulator serves "
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


# --- 5. start-up ---------------------------------------------------------------------------------

HEAVY = ("sqlalchemy", "sqlmodel", "httpx", "pycurl", "mutagen")
IMPORTS = 'python -c "import archiver.sync, archiver.archive"'  # what every sync loads before any work
PROBE = """
import json, sys
args, heavy = json.loads(sys.argv[1]), set(json.loads(sys.argv[2]))
sys.argv = ["archiver", *args]
from archiver import cli
try:
    cli.main()
except SystemExit:
    pass
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & heavy)))
"""


def startup(bench: Bench) -> Section:
    """Item 5: --help/--version vs python -c pass, and that they import nothing heavy."""
    plan = bench.plan
    section = Section(
        title="Start-up",
        intro=(f"Wall time of the installed `archiver` script against `python -c pass` on the same "
               f"interpreter, {plan.startup_runs} runs each, interleaved (medians). The heavy-import "
               "check runs each command in a probe that lists the modules loaded."),
        columns=["command", "wall (median)", "vs python -c pass", "heavy modules imported"],
    )
    env = child_env({"ARCHIVER_CONFIG": str(bench.config("startup"))})
    commands = {"python -c pass": [sys.executable, "-c", "pass"],
                "archiver --help": [*archiver_command(), "--help"],
                "archiver --version": [*archiver_command(), "--version"],
                IMPORTS: [sys.executable, "-c", IMPORTS.split('"')[1]]}
    walls: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(plan.startup_runs):
        for name, cmd in commands.items():
            walls[name].append(measure(cmd, env=env).wall)
    base = median(walls["python -c pass"])
    section.notes.append(f"The last row is not a target: it is the import cost every `archiver sync` pays "
                         "before doing anything (SQLAlchemy, SQLModel/pydantic, httpx, mutagen), the fixed "
                         "part of items 1–4 and 6.")
    for name in commands:
        heavy = ""
        if name.startswith("archiver"):
            args = name.split()[1:]
            probe = measure([sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)], env=env)
            loaded = json.loads(probe.stdout.strip().splitlines()[-1])
            heavy = ", ".join(loaded) or "none"
            section.checks.append(Check(f"start-up: `{name}` imports none of {', '.join(HEAVY)}",
                                        heavy, not loaded))
        section.rows.append([f"`{name}`", fmt_s(median(walls[name])),
                             f"{ratio(median(walls[name]), base):.2f}×", heavy])
    return section


# --- 6. browsing ---------------------------------------------------------------------------------

SEARCH_WORD = "rain"


def browse(bench: Bench) -> Section:
    """Item 6: ls --format json and search on 20,000 clips vs sqlite3 running the same SELECT."""
    from archiver.library import CLIP_FROM, CLIP_SELECT, FTS_WEIGHTS, SNIPPET_MARKS
    from archiver.query import compile_sort, fts_query

    plan = bench.plan
    library = bench.library()
    runs = plan.runs + 2
    section = Section(
        title="Browsing",
        intro=(f"On the {library.clips:,}-clip library: `archiver ls --format json` (every clip) and "
               f"`archiver search {SEARCH_WORD} --format json` (FTS5, best 50), each against the `sqlite3` "
               "shell running the same SELECT on the same file with `-json` output. Output goes to a "
               f"file. Medians of {runs} runs."),
        columns=["command", "wall (median)", "CPU", "sqlite3 (median)", "vs sqlite3", "rows"],
    )
    env = child_env({"ARCHIVER_CONFIG": str(bench.config("browse")), "ARCHIVER_LIBRARY": str(library.root)})
    ls_sql = f"{CLIP_SELECT}{CLIP_FROM} ORDER BY {compile_sort(())};"
    weights = ", ".join(str(w) for w in FTS_WEIGHTS)
    match = fts_query(SEARCH_WORD).replace("'", "''")
    search_sql = (f"{CLIP_SELECT}, snippet(clips_fts, -1, '{SNIPPET_MARKS[0]}', '{SNIPPET_MARKS[1]}', '…', 12) "
                  f"AS snippet, bm25(clips_fts, {weights}) AS score FROM clips_fts "
                  "JOIN clips c ON c.id = clips_fts.rowid JOIN tasks t ON t.id = c.task_pk "
                  "LEFT JOIN assets au ON au.clip_pk = c.id AND au.kind = 'audio' AND au.state = 'downloaded' "
                  "LEFT JOIN assets im ON im.clip_pk = c.id AND im.kind = 'image' AND im.state = 'downloaded' "
                  f"WHERE clips_fts MATCH '{match}' ORDER BY score, c.id LIMIT 50;")
    cases = [("archiver ls --format json", ["ls", "--format", "json"], ls_sql),
             (f"archiver search {SEARCH_WORD} --format json", ["search", SEARCH_WORD, "--format", "json"], search_sql)]
    sqlite = shutil.which("sqlite3")
    for label, args, sql in cases:
        ours: list[Sample] = []
        theirs: list[Sample] = []
        for _ in range(runs):
            ours.append(bench.archiver(*args, env=env))
            if sqlite:
                theirs.append(measure([sqlite, "-readonly", "-json", str(library.db), sql]))
        rows = len(json.loads(ours[-1].stdout))
        a_wall = median([s.wall for s in ours])
        s_wall = median([s.wall for s in theirs]) if theirs else float("nan")
        if theirs and len(json.loads(theirs[-1].stdout or "[]")) != rows:
            section.notes.append(f"**{label}: sqlite3 returned a different number of rows.**")
        section.rows.append([f"`{label}`", fmt_s(a_wall), fmt_s(median([s.cpu for s in ours])),
                             fmt_s(s_wall) if theirs else "absent", f"{ratio(a_wall, s_wall):.1f}×" if theirs else "",
                             f"{rows:,}"])
    if "idle_empty" in bench.results:
        section.notes.append(f"For scale: an idle `archiver sync` on an empty library takes "
                             f"{fmt_s(bench.results['idle_empty'])} here (item 3), most of it importing "
                             "SQLAlchemy, SQLModel and httpx.")
    return section
