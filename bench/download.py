"""Item 1: `archiver sync` against every downloader a user would pick instead, on the same files.

One nginx on loopback serves the media; every tool fetches the same URLs into the same file
system, runs alternate tool by tool, and each tool's output is counted before its time counts.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
from pathlib import Path

from archiver.simulator import Simulator

from . import breakdown, peers
from .fixtures import build_media
from .harness import REPO, CommandFailed, Nginx, Sample, archiver_command, child_env, measure, median
from .items import MB, Bench, fmt_s, ratio, reset
from .report import Check, Section

ABLATIONS = {  # bench/ablate.py: diagnostics for the first N only, not modes a user has
    "nofsync": "diagnostic: archiver sync, no fsync",
    "nofsync-notag": "diagnostic: archiver sync, no fsync, no tags",
}
PEER_LABELS = {"aria2c": "aria2c -j N -i urls.txt", "gallery-dl": "gallery-dl -i urls.txt (sequential)",
               "yt-dlp": "yt-dlp -a urls.txt (sequential)"}
RIVALS = ("aria2c", "gallery-dl", "yt-dlp")  # archiver's median must be lower than each of these


class _Null:
    base_url = ""

    def __enter__(self) -> "_Null":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _Run:
    """What one download run shares: the URLs, the expected output, the environment."""

    def __init__(self, bench: Bench, env: dict[str, str], ids: Path, urls: Path, curl_cfg: Path,
                 files: int, total: int) -> None:
        self.bench, self.env, self.ids, self.urls, self.curl_cfg = bench, env, ids, urls, curl_cfg
        self.files, self.total = files, total
        self.library = bench.work / "download-library"

    def fresh_library(self) -> dict[str, str]:
        """An empty library with the tasks registered (`archiver add`, not timed)."""
        shutil.rmtree(self.library, ignore_errors=True)
        env = self.env | {"ARCHIVER_LIBRARY": str(self.library)}
        self.bench.archiver("add", "ccapi-suno", "--file", str(self.ids), env=env)
        return env

    def done_with(self, path: Path) -> None:
        measure(["sync", "-f", str(path)], timeout=600)  # no dirty pages left to slow the next run
        shutil.rmtree(path, ignore_errors=True)


def download(bench: Bench) -> Section:
    """Item 1: archiver sync vs curl, curl + sync -f, aria2c, gallery-dl and yt-dlp on 200 clips."""
    plan = bench.plan
    installed = bench.peers()
    section = Section(
        title="Downloads against the tools a user would pick instead",
        intro=(f"{plan.clips} finished clips (a {plan.audio_bytes / MB:.0f} MB MP3 and a cover each, "
               f"{2 * plan.clips} files) served by one nginx on loopback. `archiver sync --jobs N` runs "
               "against the simulator's API (one batched poll pass) whose payloads point at nginx, then "
               "downloads, checks, tags, fsyncs, renames and records every file: its wall time includes "
               "start-up and the poll. The others fetch the same URL list into the same file system: "
               "`curl --parallel --parallel-max N` (bytes only, no fsync); `curl + sync` adds the time "
               "`sync -f` then takes to put curl's files on disk, the durability archiver pays for before "
               "it records a file, which makes it archiver's floor; `aria2c -j N -x 1 -i urls.txt`; "
               "`gallery-dl -i urls.txt` and `yt-dlp -a urls.txt`, which download one file at a time "
               "whatever N is (measured once, under the first N). Every tool's output is counted (files "
               "and bytes) after each run: a tool that skipped or cut a file has no figure. `Python + "
               "libcurl, durable` is bench/floor_pycurl.py: N threads on pycurl writing and hashing each "
               "body as it arrives, then fsync, rename and one folder fsync, the durability archiver gives a "
               "file with none of its other work (poll, database, checks, tags), in its own language and "
               "transfer library. The `httpx` "
               "rows are bench/floor_httpx.py (the same URLs through httpx alone: stream, sha256, write), "
               "with archiver's libcurl transport and (first N only) httpx's own; the `diagnostic` rows (first "
               "N only) are bench/ablate.py, `archiver sync` with the fsyncs, then tagging too, switched "
               f"off. Runs alternate the tools; medians of {plan.runs} for archiver, curl, aria2c and gallery-dl; "
               f"of {plan.diag_runs} for the floors and the diagnostics, and for a peer whose fastest run is still over "
               "twice archiver's slowest after that many (no further run could change its verdict). "
               "MB = 10^6 bytes."),
        columns=["N", "tool", "wall", "MB/s", "CPU", "peak RSS", "vs curl + sync"],
    )
    for name, why in installed.missing.items():
        section.notes.append(f"**{name} was not measured:** {why}.")
    media_root = bench.work / "media"
    media_root.mkdir()
    nginx = Nginx(bench.nginx, media_root, bench.work / "nginx") if bench.nginx else None
    if nginx is None:
        section.notes.append("**nginx is not installed here: the simulator's own media server (Python) "
                             "served the files instead, so the figures measure it as much as the tools.**")
    with (nginx or _Null()) as server, Simulator(media_base_url=server.base_url if nginx else None) as sim:
        bench.log(f"writing {plan.clips} clips for the media host")
        media = build_media(sim, media_root if nginx else None, clips=plan.clips, audio_bytes=plan.audio_bytes)
        ids = bench.work / "download-ids.txt"
        ids.write_text("\n".join(media.task_ids) + "\n")
        urls = bench.work / "urls.txt"
        urls.write_text("\n".join(media.urls) + "\n")
        curl_cfg = bench.work / "curl.cfg"
        curl_out = bench.work / "curl-out"
        curl_cfg.write_text("".join(f'url = "{url}"\noutput = "{curl_out / url.rsplit("/", 1)[1]}"\n'
                                    for url in media.urls))
        run = _Run(bench, child_env(sim.env() | {"ARCHIVER_CONFIG": str(bench.config("download"))}),
                   ids, urls, curl_cfg, len(media.urls), media.total_bytes)
        _curl(run, plan.jobs[0])  # warm the page cache
        sequential: dict[str, list[Sample]] = {}
        for jobs in plan.jobs:
            _one_n(run, section, installed, jobs, sequential, first=jobs == plan.jobs[0])
        _readers(run, section, plan.jobs[0])
    section.notes.append(f"Payload: {media.total_bytes / MB:.0f} MB in {len(media.urls)} files; the media host is "
                         + ("nginx (sendfile on, keep-alive, access_log off, 1 worker)." if nginx else
                            "the simulator."))
    return section


def _one_n(run: _Run, section: Section, installed: peers.Peers, jobs: int,
           sequential: dict[str, list[Sample]], first: bool) -> None:
    bench, plan = run.bench, run.bench.plan
    floors = (("httpx", "httpx"), ("httpx-curl", "curl")) if first else (("httpx-curl", "curl"),)
    timed: dict[str, list[Sample]] = {"curl": [], "archiver": [], "pycurl": [],
                                      **{name: [] for name, _ in floors}}
    synced: list[float] = []
    fails: dict[str, str] = {}
    ours = [name for name in installed.binaries if first or name not in peers.SEQUENTIAL]
    timed.update({name: [] for name in ours})
    if first:
        timed.update({name: [] for name in ABLATIONS})
    for number in range(plan.runs):
        bench.log(f"download N={jobs} run {number + 1}/{plan.runs}")
        sample, sync_time = _curl(run, jobs)
        timed["curl"].append(sample)
        synced.append(sample.wall + sync_time)
        timed["archiver"].append(_archiver(run, jobs))
        diagnose = number < plan.diag_runs
        for name in ours:
            if name not in fails and (diagnose or not _settled(timed[name], timed["archiver"])):
                try:
                    timed[name].append(_peer(run, name, installed.binaries[name], jobs))
                except (CommandFailed, RuntimeError) as exc:
                    fails[name] = str(exc).strip().splitlines()[0][:300]
        if not diagnose:
            continue
        if "pycurl" not in fails:
            try:
                timed["pycurl"].append(_pycurl_floor(run, jobs))
            except (CommandFailed, RuntimeError) as exc:
                fails["pycurl"] = str(exc).strip().splitlines()[-1][:300]
        for name, transport in floors:
            if name not in fails:
                try:
                    timed[name].append(_httpx_floor(run, jobs, transport))
                except CommandFailed as exc:
                    fails[name] = str(exc).strip().splitlines()[-1][:300]
        for name in ABLATIONS if first else ():
            if name not in fails:
                try:
                    timed[name].append(_archiver(run, jobs, ablation=name))
                except CommandFailed as exc:
                    fails[name] = str(exc).strip().splitlines()[-1][:300]
    sequential.update({name: timed[name] for name in ours if name in peers.SEQUENTIAL and name not in fails})
    floor = median(synced)
    labels = {"curl": "curl --parallel", "httpx": "httpx, its own transport",
              "httpx-curl": "httpx + libcurl transport", "archiver": "**archiver sync**",
              "pycurl": "Python + libcurl, durable (sha256, fsync, rename)",
              **PEER_LABELS, **ABLATIONS}

    def row(name: str, samples: list[Sample]) -> list[str]:
        if name in fails:
            return [str(jobs), labels[name], f"failed: {fails[name]}", "", "", "", ""]
        wall = median([s.wall for s in samples])
        return [str(jobs), labels[name], fmt_s(wall), f"{run.total / MB / wall:.0f}", fmt_s(median([s.cpu for s in samples])),
                f"{median([s.maxrss_mib for s in samples]):.0f} MiB", f"{ratio(wall, floor):.2f}×"]

    section.rows.append(row("curl", timed["curl"]))
    section.rows.append([str(jobs), "curl --parallel, then `sync -f` (floor)", fmt_s(floor),
                         f"{run.total / MB / floor:.0f}", "", "", "1.00×"])
    section.rows += [row(name, timed[name]) for name in ours]
    section.rows += [row(name, timed[name]) for name in ("pycurl", "httpx", "httpx-curl", "archiver") if name in timed]
    section.rows += [row(name, timed[name]) for name in ABLATIONS if name in timed]
    a_wall = median([s.wall for s in timed["archiver"]])
    start = len(section.checks)
    bench.results[f"download_rss_{jobs}"] = median([s.maxrss_mib for s in timed["archiver"]])
    rivals: dict[str, float] = {}
    for name in RIVALS:
        samples = sequential.get(name) if name in peers.SEQUENTIAL else timed.get(name)
        if name in fails and name in timed:
            section.notes.append(f"**{name} (N={jobs}) has no figure:** {fails[name]}")
        if not samples:
            continue
        wall = rivals[name] = median([s.wall for s in samples])
        section.checks.append(Check(f"download N={jobs}: archiver sync faster than {name}",
                                    f"{fmt_s(a_wall)} vs {fmt_s(wall)} ({ratio(a_wall, wall):.2f}×)", a_wall < wall))
    met = a_wall <= 2 * floor
    section.checks.append(Check(f"download N={jobs}: archiver sync ≤ 2× curl + sync -f",
                                f"{ratio(a_wall, floor):.2f}× ({fmt_s(a_wall)} vs {fmt_s(floor)})", met))
    cpu = median([s.cpu for s in timed["archiver"]])
    c_cpu = median([s.cpu for s in timed["curl"]])
    section.notes.append(f"Per file at N={jobs}: archiver {a_wall / run.files * 1e3:.1f} ms of wall and "
                         f"{cpu / run.files * 1e3:.1f} ms of CPU; curl {c_cpu / run.files * 1e3:.1f} ms of CPU; "
                         f"the durable floor {floor / run.files * 1e3:.1f} ms of wall.")
    if first and not all(c.passed for c in section.checks[start:]):
        _where_the_time_goes(run, section, jobs, a_wall, floor, timed,
                             {name: wall for name, wall in rivals.items() if wall <= a_wall})


def _settled(rival: list[Sample], ours: list[Sample]) -> bool:
    """A rival whose fastest run so far is over twice archiver's slowest: no further run can turn the
    comparison around, so it is not repeated (the median is of the runs it had)."""
    return bool(rival) and min(s.wall for s in rival) > 2 * max(s.wall for s in ours)


def _where_the_time_goes(run: _Run, section: Section, jobs: int, a_wall: float, floor: float,
                         timed: dict[str, list[Sample]], ahead: dict[str, float]) -> None:
    """A missed target's breakdown: imports, the floor of this design against the peers `ahead`
    (name: median wall), the main thread's profile, the ablations."""
    bench = run.bench
    bench.log("download: taking the breakdown (import times, a profiled sync)")
    env = run.fresh_library()
    found = breakdown.imports([*archiver_command(), "sync", "--jobs", str(jobs), "--json"], env)
    run.done_with(run.library)
    env = run.fresh_library()
    groups = breakdown.profile(["sync", "--jobs", str(jobs), "--json"], env, bench.work, sys.executable)
    run.done_with(run.library)
    ablated = {name: median([s.wall for s in timed[name]]) for name in ABLATIONS if timed.get(name)}
    parts = [f"**Where archiver's time goes (N={jobs}).** The floor is {fmt_s(floor)} (`curl + sync`): "
             f"the same bytes fetched and made durable. archiver takes {fmt_s(a_wall)}. Of that, "
             f"{breakdown.describe_imports(found)} before any work (`-X importtime`, one extra run)."]
    if timed.get("pycurl"):
        py = median([s.wall for s in timed["pycurl"]])
        parts.append(f"A Python program with the same durability and nothing else (bench/floor_pycurl.py) takes "
                     f"{fmt_s(py)}, so the language and libcurl are not the limit: the {fmt_s(a_wall - py)} "
                     "between it and archiver is archiver's own work (start-up and the poll, the per-file "
                     "steps on the event loop and their hand-offs to threads, tags, the database).")
        parts.append(_design_floor(run, py, ahead))
    if "nofsync" in ablated:
        parts.append(f"Without its fsyncs it takes {fmt_s(ablated['nofsync'])}"
                     + (f", without tags as well {fmt_s(ablated['nofsync-notag'])}" if "nofsync-notag" in ablated
                        else "") + ".")
    parts.append("The main thread (the event loop; libcurl's and the worker threads are not in it) "
                 "under cProfile, one extra run, by package: " + breakdown.describe_profile(groups, a_wall) + ".")
    split = _thread_cpu(run, jobs)
    if split:
        c_cpu = median([s.cpu for s in timed["curl"]])
        shown = ", ".join(f"{label} {split[label]:.2f} s ({split[label] / run.files * 1e3:.1f} ms a file)"
                          for label in ("event loop", "file work", "transfers") if label in split)
        parts.append(f"CPU by thread (bench/threadcpu.py, one extra run): {shown}; curl's whole run takes "
                     f"{fmt_s(c_cpu)} of CPU for the same bytes. The event loop includes start-up and the poll; "
                     "file work is what worker threads do for each file (locating it, the tags-first "
                     "write of an MP3, the rename); transfers are libcurl moving the bytes into each `.part`, "
                     "then in the same thread its hash, an MP3's tags, the audio's length check and a cover's "
                     "fsync.")
    if timed.get("archiver"):
        busy = median([s.cpu / s.wall for s in timed["archiver"] if s.wall > 0])
        parts.append(f"archiver keeps {busy:.2f} of the {os.cpu_count()} cores busy on average (CPU / wall). "
                     "libcurl writes each body into its `.part` without Python (item 22 below); what is left "
                     "between the transfers is each file's work in Python and its hand-offs between the event "
                     "loop and worker threads, each of which waits for the GIL (\"The GIL, after item 22\" and "
                     "\"Per transfer\", under \"What was profiled\" below).")
    section.notes.append(" ".join(parts))


def _design_floor(run: _Run, durable: float, ahead: dict[str, float]) -> str:
    """The durable floor plus what a sync must load before its first transfer, against the peers
    that beat archiver: a peer under it cannot be beaten by tuning archiver's per-file work."""
    ours: list[float] = []
    theirs: list[float] = []
    runs = run.bench.plan.diag_runs + 2
    for _ in range(runs):  # alternating, in this venv
        ours.append(measure([sys.executable, "-c", "import archiver.sync, archiver.archive"], env=run.env).wall)
        theirs.append(measure([sys.executable, "-c", "import pycurl"], env=run.env).wall)
    loads = max(0.0, median(ours) - median(theirs))
    design = durable + loads
    text = (f"Loading what a sync runs on (`python -c \"import archiver.sync, archiver.archive\"`: the CLI, "
            "httpx to poll, SQLAlchemy and SQLModel to store the poll's records, the download side) takes "
            f"{fmt_s(loads)} more than the floor program's own start (`python -c \"import pycurl\"`; medians "
            f"of {runs} alternating runs). A transfer starts from a stored record (the asset row its file is "
            "recorded against), so these loads come before the first byte, and the floor of this design is "
            f"the durable floor plus them: {fmt_s(design)}.")
    verdicts = ((True, "under that floor (with no fsync): no tuning of archiver's per-file work can win there; "
                       "it would take transfers that begin before SQLModel is loaded, or a write path without it."),
                (False, "above that floor: the gap there is archiver's own work after start-up."))
    for under, verdict in verdicts:
        names = [name for name, wall in ahead.items() if (wall < design) == under]
        if names:
            text += (" " + " and ".join(f"{name} ({fmt_s(ahead[name])})" for name in names)
                     + (" finishes " if len(names) == 1 else " finish ") + verdict)
    return text


def _thread_cpu(run: _Run, jobs: int) -> dict[str, float]:
    """CPU seconds of one sync by thread group (bench/threadcpu.py); empty where /proc is absent."""
    if not Path("/proc/self/task").is_dir():
        return {}
    env = run.fresh_library()
    sample = measure([sys.executable, str(REPO / "bench" / "threadcpu.py"), "sync", "--jobs", str(jobs), "--json"],
                     env=env, timeout=900)
    run.done_with(run.library)
    _check_report(sample, run.files)
    lines = [line for line in sample.stderr.splitlines() if line.startswith('{"threadcpu"')]
    groups = json.loads(lines[-1])["threadcpu"] if lines else {}
    return {label: times["user"] + times["sys"] for label, times in groups.items()}


def _curl(run: _Run, jobs: int) -> tuple[Sample, float]:
    """One curl run into a fresh directory; returns it and how long `sync -f` then took."""
    out = run.bench.work / "curl-out"
    reset(out)
    sample = measure(["curl", "--parallel", "--parallel-max", str(jobs), "--silent", "--show-error",
                      "--fail", "--config", str(run.curl_cfg)], timeout=600)
    peers.check_output("curl", out, run.files, run.total)
    synced = measure(["sync", "-f", str(out)], timeout=600).wall
    shutil.rmtree(out, ignore_errors=True)
    return sample, synced


def _peer(run: _Run, name: str, binary: str, jobs: int) -> Sample:
    out = run.bench.work / f"{name}-out"
    reset(out)
    try:
        sample = measure(peers.command(name, binary, run.urls, out, jobs), cwd=run.bench.work, timeout=600)
        peers.check_output(name, out, run.files, run.total)
    finally:
        run.done_with(out)
    return sample


def _httpx_floor(run: _Run, jobs: int, transport: str) -> Sample:
    """bench/floor_httpx.py over the same URLs: what the HTTP layer alone costs."""
    out = run.bench.work / "httpx-out"
    reset(out)
    try:
        return measure([sys.executable, str(REPO / "bench" / "floor_httpx.py"), str(run.urls), str(out), str(jobs),
                        transport], timeout=600)
    finally:
        run.done_with(out)


def _pycurl_floor(run: _Run, jobs: int) -> Sample:
    """bench/floor_pycurl.py over the same URLs: archiver's durability in Python, nothing else."""
    out = run.bench.work / "pycurl-out"
    reset(out)
    try:
        sample = measure([sys.executable, str(REPO / "bench" / "floor_pycurl.py"), str(run.urls), str(out),
                          str(jobs)], timeout=600)
        peers.check_output("floor_pycurl.py", out, run.files, run.total)
        return sample
    finally:
        run.done_with(out)


def _archiver(run: _Run, jobs: int, ablation: str | None = None) -> Sample:
    env = run.fresh_library()
    if ablation:
        sample = measure([sys.executable, str(REPO / "bench" / "ablate.py"), ablation, "sync", "--jobs", str(jobs),
                          "--json"], env=env, timeout=900)
    else:
        sample = run.bench.archiver("sync", "--jobs", str(jobs), "--json", env=env)
    _check_report(sample, run.files)
    run.done_with(run.library)
    return sample


def _check_report(sample: Sample, files: int) -> None:
    report = json.loads(sample.stdout.strip().splitlines()[-1])
    if report["files_downloaded"] != files or report["exit_code"] != 0:
        raise RuntimeError(f"archiver sync downloaded {report['files_downloaded']} of {files} files: "
                           f"{report['errors'][:3]}")


def _readers(run: _Run, section: Section, jobs: int) -> None:
    """Readers never blocked by a running sync: `archiver ls` over and over while one downloads."""
    bench = run.bench
    bench.log(f"download: readers during a sync (N={jobs})")
    env = run.fresh_library()
    ls = [*archiver_command(), "ls", "--format", "json"]
    result: list[Sample] = []
    worker = threading.Thread(target=lambda: result.append(bench.archiver("sync", "--jobs", str(jobs), "--json",
                                                                          env=env, check=False)))
    worker.start()
    during: list[Sample] = []
    while worker.is_alive():
        during.append(measure(ls, env=env, check=False, timeout=120))
    worker.join()
    if result:
        _check_report(result[0], run.files)
    idle = [measure(ls, env=env, timeout=120) for _ in range(3)]
    run.done_with(run.library)
    failed = [s for s in during if s.returncode != 0]
    slowest = max((s.wall for s in during), default=float("nan"))
    base = median([s.wall for s in idle])
    bound = max(3 * base, base + 1.0)
    section.checks.append(Check(
        "download: readers never blocked by a running sync (every `ls` during it ≤ max(3×, +1 s) of an idle `ls`)",
        f"{len(during)} `ls` runs during the sync, {len(failed)} failed, slowest {fmt_s(slowest)}; "
        f"idle `ls` {fmt_s(base)}", bool(during) and not failed and slowest <= bound))
    if failed:
        section.notes.append(f"**A reader failed during the sync:** {failed[0].stderr.strip()[-300:]}")
