"""Issue #7's long run: prove over a big library that nothing is lost and nothing leaks.

    .venv/bin/python bench/torture.py            # the full run (about 10-15 minutes), writes docs/reliability.md
    .venv/bin/python bench/torture.py --quick    # the same at CI scale (about 2 minutes), writes nothing

It drives the harness the reliability tests use (`archiver.testkit`) at a larger scale: a fault storm over a
library of 150+ clips across the five sources, the database deleted and rebuilt from the tags,
20+ SIGKILLs in a row then one clean sync, a hostile library (the user's files and planted links
at the target names, trickling servers, tokens JSON-escaped in errors, the library folder absent;
bench/torture_hostile.py), and the property tests with 10,000 examples each
(ARCHIVER_HYPOTHESIS_EXAMPLES); then it runs the scenario tests (concurrency, secrets, disk full,
damaged database, bad input, files, hangs, output). Everything runs against the simulator and small servers on
127.0.0.1, in temporary directories removed at the end. Exit status 1 when anything was lost or
any check failed, 0 otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from torture_hostile import hostile  # beside this script

from archiver import testkit as harness
from archiver.simulator import Simulator

ROOT = Path(__file__).resolve().parents[1]

DOC = ROOT / "docs" / "reliability.md"
COMMAND = ".venv/bin/python bench/torture.py"
PROPERTY_FILES = ("tests/test_paths.py", "tests/test_normalize.py", "tests/test_reliability_input.py")
PROPERTY_SELECT = "property or never_crash or arbitrary_json"
SCENARIOS = [
    ("concurrency", ["tests/test_reliability_concurrency.py"]),
    ("secrets", ["tests/test_reliability_secrets.py", "tests/test_config.py"]),
    ("disk full", ["tests/test_reliability_disk.py"]),
    ("bad input", ["tests/test_reliability_input.py", "-k", f"not ({PROPERTY_SELECT})"]),
    ("damaged database", ["tests/test_reliability.py", "tests/test_rebuild.py", "-k", "damaged or rebuild_after_loss"]),
    ("kills around tagging", ["tests/test_reliability_crash.py", "-k", "tagging"]),
    ("files not owned, links, absent library", ["tests/test_reliability_files.py"]),
    ("trickling servers", ["tests/test_reliability_hang.py"]),
    ("escaped tokens, URL credentials", ["tests/test_reliability_secrets2.py"]),
    ("read-only, run records", ["tests/test_reliability_state.py"]),
    ("terminal output", ["tests/test_reliability_output.py"]),
]


@dataclass(frozen=True)
class Scale:
    rounds: int  # storm library: rounds x 13 clips (+1)
    waves: int  # times the whole fault list is injected
    crash_rounds: int  # crash library before new tasks arrive
    kills: int
    examples: int  # hypothesis examples per property test
    max_runs: int  # storm syncs at most
    hostile_tasks: int  # hostile library: tasks over the five sources, 3 clips each (MountSea 1)
    trickles: int  # hostile library: clips whose media trickles forever for one run


FULL = Scale(rounds=12, waves=2, crash_rounds=4, kills=24, examples=10_000, max_runs=10, hostile_tasks=40,
             trickles=3)
QUICK = Scale(rounds=4, waves=1, crash_rounds=4, kills=5, examples=100, max_runs=8, hostile_tasks=10, trickles=2)


@dataclass
class Outcome:
    """One part of the run: its figures for the report and what went wrong (nothing, we hope)."""

    name: str
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    lost_files: int = 0
    lost_rows: int = 0


def storm_and_rebuild(scale: Scale, seed: int, work: Path) -> tuple[Outcome, Outcome]:
    """Part 1 and 6: the fault storm, then the database deleted and rebuilt from the tags."""
    storm, rebuild = Outcome("fault storm"), Outcome("rebuild after loss")
    started = time.monotonic()
    rng = random.Random(seed)
    with Simulator(seed=rng.randrange(1 << 30)) as sim:
        lib = harness.Lib.create(sim, work / "storm")
        plan = harness.populate(lib, rounds=scale.rounds, rng=rng)
        harness.inject_storm(sim, plan, rng, waves=scale.waves)
        codes = harness.storm(lib, plan, max_runs=scale.max_runs)
        figures = harness.check_library(lib, plan)
        (gone,) = plan.gone
        before = harness.media_requests_for(sim, gone)
        code, summary = lib.sync()
        codes.append(code)
        if code != 1 or not any(gone in e for e in summary.get("errors", [])):
            storm.problems.append("other: the dead link was not reported by the last run's exit code and errors")
        if harness.media_requests_for(sim, gone) <= before:
            storm.problems.append("other: the dead link was not tried again on the next run")
        storm.problems += figures.problems + harness.no_tracebacks(lib)
        served = Counter(f"{r.target} {r.fault}" for r in sim.requests if r.fault)
        clips = sum(len(harness.sim_clips(sim, s, t)) for s, t in plan.tasks)
        storm.figures = {
            "clips": clips, "tasks": len(plan.all_tasks), "runs": len(codes), "exit codes": codes,
            "faults injected": dict(sorted(plan.faults.items())), "faults served": dict(sorted(served.items())),
            "api requests": sim.count("api"), "media requests": sim.count("media"),
            "files verified": figures.files, "clips verified": figures.clips, "rows": figures.rows,
            "unrecoverable reported": f"{len(plan.gone)} clip (404 forever), {len(plan.unknown)} unknown task, "
                                      f"{len(plan.provider_failed)} task failed at the provider",
        }
        storm.lost_files, storm.lost_rows = figures.lost_files, figures.lost_rows
        storm.seconds = time.monotonic() - started

        started = time.monotonic()
        snapshot = harness.snapshot(lib)
        rebuild.problems = harness.rebuild_matches(lib)
        verify = lib.cli("verify")
        if verify.exit_code != 0:
            rebuild.problems.append(f"other: verify after rebuild: {verify.output.strip()}")
        rebuild.figures = {"clips compared": len(snapshot),
                           "fields per clip": "source, task, clip, title, lyrics, duration, audio and cover "
                                              "path and sha256"}
        rebuild.lost_rows = sum(1 for p in rebuild.problems if p.startswith("row"))
        rebuild.seconds = time.monotonic() - started
    return storm, rebuild


def crash(scale: Scale, seed: int, work: Path) -> Outcome:
    """Part 2: SIGKILL after SIGKILL, at armed points and random moments, then one clean sync."""
    outcome = Outcome("crash safety")
    started = time.monotonic()
    rng = random.Random(seed + 1)
    with Simulator(seed=rng.randrange(1 << 30)) as sim:
        lib = harness.Lib.create(sim, work / "crash", "connect_timeout = 2\nread_timeout = 2\n")
        plan = harness.populate(lib, rounds=scale.crash_rounds, rng=rng)
        kills = harness.crash_loop(lib, plan, rng, scale.kills)
        proc = harness.spawn(lib, *harness.SYNC_ARGS)
        _out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            outcome.problems.append(f"other: the clean sync exited {proc.returncode}: {err.strip()[-300:]}")
        figures = harness.check_library(lib, plan)
        outcome.problems += figures.problems
        outcome.problems += [f"other: a killed run printed a traceback ({k.how})"
                             for k in kills if "Traceback" in k.stderr]
        if len(kills) < scale.kills:
            outcome.problems.append(f"other: only {len(kills)} of {scale.kills} kills landed")
        armed = Counter(k.how for k in kills if k.how != "timed")
        timed = Counter(k.phase for k in kills if k.how == "timed")
        outcome.figures = {
            "kills": len(kills), "by armed point": dict(sorted(armed.items())),
            "random moments, by what was going on": dict(sorted(timed.items())),
            "clips": figures.clips, "files verified": figures.files, "rows": figures.rows,
            "tasks": len(plan.all_tasks),
        }
        outcome.lost_files, outcome.lost_rows = figures.lost_files, figures.lost_rows
    outcome.seconds = time.monotonic() - started
    return outcome


def hostile_library(scale: Scale, seed: int, work: Path) -> Outcome:
    """Part 8: issue 12's faults (not-owned files, planted links, trickles, escaped tokens, absence)."""
    outcome = Outcome("hostile library")
    started = time.monotonic()
    outcome.figures, outcome.problems, outcome.lost_files, outcome.lost_rows = hostile(
        scale.hostile_tasks, scale.trickles, scale.max_runs, seed, work)
    outcome.seconds = time.monotonic() - started
    return outcome


def pytest_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]


def pytest_env(examples: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    return env | {"ARCHIVER_HYPOTHESIS_EXAMPLES": str(examples)}


def start_properties(scale: Scale, log: Path) -> subprocess.Popen[bytes]:
    """Part 4's property tests, in the background while the storm mostly waits on the network."""
    with log.open("wb") as out:
        return subprocess.Popen(pytest_command(*PROPERTY_FILES, "-k", PROPERTY_SELECT, "--hypothesis-show-statistics"),
                                cwd=ROOT, env=pytest_env(scale.examples), stdout=out, stderr=subprocess.STDOUT)


def finish_properties(proc: subprocess.Popen[bytes], log: Path, started: float) -> Outcome:
    outcome = Outcome("bad input (properties)")
    code = proc.wait()
    text = log.read_text(encoding="utf-8", errors="replace")
    per_test: dict[str, int] = {}
    for block in re.split(r"\n(?=tests/\S+::\S+:\n)", text):
        name = re.match(r"(tests/\S+::\S+):", block.strip())
        counts = re.findall(r"(\d+) passing, (\d+) failing", block)
        if name and counts:
            per_test[name.group(1)] = sum(int(p) for p, _f in counts)
    outcome.figures = {"examples per test": per_test, "inputs tried": sum(per_test.values()),
                       "pytest": _summary(text)}
    if code != 0:
        outcome.problems.append(f"other: property tests failed: {_summary(text)}")
    outcome.seconds = time.monotonic() - started
    return outcome


def scenarios() -> Outcome:
    """Parts 3, 4, 5, 6, 7 as the CI tests prove them, run once more here."""
    outcome = Outcome("scenario tests")
    started = time.monotonic()
    results: dict[str, str] = {}
    for name, args in SCENARIOS:
        proc = subprocess.run(pytest_command(*args), cwd=ROOT, env=pytest_env(200), capture_output=True, text=True,
                              timeout=900)
        results[name] = _summary(proc.stdout)
        if proc.returncode != 0:
            outcome.problems.append(f"other: {name}: {results[name]}")
            tail = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
            outcome.problems += [f"other:   {line}" for line in tail[:10]]
    outcome.figures = results
    outcome.seconds = time.monotonic() - started
    return outcome


def _summary(pytest_output: str) -> str:
    lines = [line.strip("= ") for line in pytest_output.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    return re.sub(r" in [\d.]+s.*", "", lines[-1]) if lines else "no result"


def hostile_section(part: Outcome) -> list[str]:
    """Section 8 of the report: the hostile library."""
    hf = part.figures
    planted = ", ".join(f"{count} {kind}{'s' if count > 1 and kind == 'user file' else ''}"
                        for kind, count in hf["planted"].items())
    escapes = ", ".join(f"{count} {kind}" for kind, count in hf["escaped-token answers"].items())
    trickled = hf["trickled requests"]
    return [
        "## 8. A hostile library",
        "",
        f"One library of {hf['clips']} clips ({hf['tasks']} tasks over the five sources) with the path template "
        f"`{{title}}.{{ext}}` and {hf['titles']} titles, so names collide, the lyrics sidecar on, and the "
        "database outside the library folder. Before the first sync the user's own files and symbolic links to "
        f"files outside the library sit at the names archiver is about to use: {planted}. Every provider first "
        f"answers 400 with the token JSON-escaped in its error message ({escapes}); then one API and the "
        "media of a few clips trickle a byte at a time for a whole run, and more answers trickle once "
        f"({trickled.get('media', 0)} media and {trickled.get('api', 0)} API requests trickled): "
        f"that run ended by itself (longest sync {hf['longest sync (s)']} s) with "
        f"{hf['stalled errors']} \"stalled\" and {hf['API timed-out errors']} API timeout errors, exit 1. "
        f"Exit codes {hf['exit codes']}. Then the library folder is moved away, and replaced by an empty one, "
        f"while every link has expired: {hf['absent-library refusals']} of 2 syncs refused (\"is its disk "
        "mounted\", exit 1) and left every row as it was; once the folder is back a sync downloads nothing "
        "and exits 0.",
        "",
        "Result: every planted file byte-identical, every file outside the library byte-identical (each change "
        "would count as a lost file), no archived path a link. "
        f"{hf['reported: .part link in the way']} files whose `.part` name was a planted link were refused and "
        "reported (\"symbolic link\") on every run, not lost: after the user removed those links the next sync "
        f"archived them. {hf['files verified']} files of {hf['clips verified']} clips verified against what the "
        f"simulator serves, {hf['rows']} rows checked; `verify`: {hf['verify']} (the orphans are the user's "
        f"files and links). The token, raw or as a fragment, in none of {hf['outputs searched']} outputs "
        f"({hf['outputs with <redacted>']} show `<redacted>`) nor in the database file and its WAL.",
        "",
    ]


def _commit() -> str:
    """The checkout the figures were measured on (a `+` marks uncommitted changes)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+" if git("status", "--porcelain", "--untracked-files=no") else "")


def render(outcomes: list[Outcome], scale: Scale, seed: int, seconds: float) -> str:
    """docs/reliability.md from this run's figures."""
    by_name = {o.name: o for o in outcomes}
    lost_files = sum(o.lost_files for o in outcomes)
    lost_rows = sum(o.lost_rows for o in outcomes)
    failed = [p for o in outcomes for p in o.problems]
    storm, rebuild, crashes = by_name["fault storm"], by_name["rebuild after loss"], by_name["crash safety"]
    props, scen, hostile_part = by_name["bad input (properties)"], by_name["scenario tests"], by_name["hostile library"]
    sf, cf, pf, hf = storm.figures, crashes.figures, props.figures, hostile_part.figures
    served, injected = sf["faults served"], sf["faults injected"]
    lines = [
        "# Reliability: nothing is lost, nothing leaks",
        "",
        f"Figures from the last run of `{COMMAND}` (seed {seed}, code at commit {_commit()}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{seconds / 60:.1f} minutes on {os.cpu_count()} cores, Python {platform.python_version()}). "
        "Everything runs against the provider simulator and small servers on 127.0.0.1, in temporary "
        "directories. The same checks run in CI at a smaller scale: `tests/test_reliability*.py` (about two "
        "minutes); `--quick` runs this script at that scale.",
        "",
        "## Summary",
        "",
        "| | |",
        "|---|---|",
        f"| files lost | **{lost_files}** |",
        f"| database rows lost or wrong | **{lost_rows}** |",
        f"| other failed checks | **{len(failed) - sum(1 for p in failed if p.startswith(('file', 'row')))}** |",
        f"| faults served by the simulator | {sum(served.values())} ({len(served)} kinds) |",
        f"| SIGKILLs survived | {cf['kills']} |",
        f"| hypothesis inputs tried | {pf['inputs tried']:,} |",
        f"| clips archived and verified | {sf['clips verified'] + cf['clips'] + hf['clips verified']} |",
        f"| user files and links planted at target names (none changed, none written through) | "
        f"{sum(hf['planted'].values())} |",
        f"| trickled requests (media, API) / token-escaping error answers | "
        f"{hf['trickled requests'].get('media', 0)}, {hf['trickled requests'].get('api', 0)} / "
        f"{sum(hf['escaped-token answers'].values())} |",
        "",
        "## 1. Fault storm",
        "",
        f"One library of {sf['clips']} clips ({sf['tasks']} tasks over the five sources), every fault kind "
        f"injected {scale.waves}x, then `archiver sync` repeated until everything recoverable was archived: "
        f"{sf['runs']} runs, exit codes {sf['exit codes']} (1 while the dead link below is still failing). "
        f"{sf['api requests']} API and {sf['media requests']} media requests in all.",
        "",
        "| target | fault | injected | served |",
        "|---|---|---:|---:|",
    ]
    for kind in sorted({k.split(" (")[0] for k in injected} | set(served)):
        planned = sum(v for k, v in injected.items() if k.split(" (")[0] == kind)
        target, _, name = kind.partition(" ")
        lines.append(f"| {target} | {name} | {planned} | {served.get(kind, 0)} |")
    lines += [
        "",
        "API faults are queued per provider (429 with Retry-After in seconds and as an HTTP date, 500/502/503 "
        "bursts, reset, stall, HTML with status 200, malformed JSON, an unknown status string); media faults hit "
        "the next file of a provider or a chosen clip (cut body, reset mid-body, body without Content-Length "
        "closed early on long MP3s so only the duration check can catch it, stall, HTML with status 200, 5xx, "
        "429, expired link, a 404 that never heals).",
        "",
        f"Result: {sf['files verified']} files verified (covers byte-identical to what the simulator serves, audio "
        f"frame-identical after stripping the tags: MPEG frames of MP3s, `mdat` of M4As), {sf['rows']} rows "
        f"checked, no `.part` and no unrecorded file left, no traceback. Unrecoverable and reported by "
        f"`tasks`, `stats` and the exit code, and tried again on the next run: {sf['unrecoverable reported']}.",
        "",
        "## 2. Crash safety",
        "",
        f"{cf['kills']} SIGKILLs in a row on `python -m archiver sync` over a library that grew to {cf['clips']} "
        f"clips ({cf['tasks']} tasks: new ones arrive between runs, as for a cron job), then one clean sync. "
        "Half the kills are armed at a point of the code by a test-side wrapper (no hook in archiver), half land "
        "at a random moment after the run starts talking to the simulator.",
        "",
        "| where | kills |",
        "|---|---:|",
        *[f"| armed: {k} | {v} |" for k, v in cf["by armed point"].items()],
        *[f"| random moment: {k} | {v} |" for k, v in cf["random moments, by what was going on"].items()],
        "",
        f"Result: {cf['files verified']} files present once each and identical to the source, {cf['rows']} rows, "
        "`PRAGMA integrity_check` ok, no `.part` left, no duplicate row.",
        "",
        "## 3-7. Concurrency, bad input, secrets, damaged database, disk full",
        "",
        f"Property tests, {scale.examples:,} examples each (hostile titles, lyrics, ids and payloads through "
        "the wire format, the normalizers, the database and the path builder; never a traceback, never a "
        "path outside the library):",
        "",
        "| property test | inputs |",
        "|---|---:|",
        *[f"| `{name}` | {count:,} |" for name, count in pf["examples per test"].items()],
        "",
        "Scenario tests (each a file under `tests/`):",
        "",
        "| part | result |",
        "|---|---|",
        *[f"| {name} | {result} |" for name, result in scen.figures.items()],
        "",
        "- **Concurrency**: two and five simultaneous syncs: one works, the others exit 75; with `--wait` they "
        "take turns (their `sync_runs` never overlap); `ls`, `search`, `stats`, `tasks` and `add` while a sync "
        "writes never see \"database is locked\".",
        "- **Bad input**: `file:`, `data:`, `ftp:`, relative and malformed media URLs, and redirects to them, fail "
        "their own file only; oversized media is refused with or without Content-Length and leaves no `.part`; "
        "redirect loops stop after 5 hops on the API and the media host; API answers that are not JSON "
        "(text, HTML, empty, cut, bad gzip, bad UTF-8, nested 100,000 deep) are errors of that poll; lone "
        "surrogates in JSON are stored as U+FFFD; task ids that are not UTF-8 are usage errors.",
        "- **Secrets**: tokens never appear in stdout, stderr, log records at DEBUG, tracebacks with "
        "ARCHIVER_DEBUG=1, exception text, the database and its WAL, archived files or `show` payloads, under "
        "401, 5xx, resets, stalls, a provider echoing the token back and a cross-origin redirect; a config file "
        "with tokens that others can read gets a warning.",
        "- **Damaged database**: a garbage, cut or scrambled file, or one bad page that only a later query reads: "
        "one clear line naming the file and `archiver rebuild`, never a traceback; `rebuild` recreates "
        f"everything from the tags. After the storm: {rebuild.figures.get('clips compared', 0)} clips compared "
        f"field by field ({rebuild.figures.get('fields per clip', '')}), {len(rebuild.problems)} differences.",
        "- **Disk full**: RLIMIT_FSIZE on the sync (always available) and a 3 MB tmpfs (where mounting is "
        "allowed): one clear message, the library consistent (`verify` clean), the next run completes. On a "
        "filesystem that is really full a second line may follow: the run's own record in the database could "
        "not be saved either.",
        "",
        *hostile_section(hostile_part),
        "## What these checks found",
        "",
        "Fixed in archiver while writing them (each has a test that failed before):",
        "",
        "- A run killed after tagging but before the rename left a tagged `.part`; the next run resumed it with "
        "Range and spliced the source's tail onto our tags: a corrupt song recorded with a valid sha256 "
        "(when the source's own tags were bigger than ours). Audio is now tagged under another name, never "
        "resumed.",
        "- One media URL that redirects in a loop, or that httpx cannot parse (`http://[::1`, a port over "
        "65535, directly or through a redirect), stopped the whole run with an internal error, on every run.",
        "- One title with a lone UTF-16 surrogate (valid JSON from a JavaScript backend cutting an emoji) made "
        "every later sync fail with an internal error; so did a task id that is not UTF-8.",
        "- A body with a Content-Encoding it does not match, or JSON nested too deep, was an internal error.",
        "- A provider echoing the token in an error message put it in the output and the database.",
        "- A refused oversized download left its `.part` behind, to be resumed and refused again.",
        "- A database damaged past its schema printed an internal error with SQL; `archiver rebuild` refused to "
        "rebuild it and told the user to run `archiver rebuild`.",
        "- A body cut short without Content-Length was archived when the format's header states the full "
        "length (FLAC; an M4A whose `moov` comes first): its end is now confirmed by asking the server for "
        "what follows it (`Range: bytes=<size>-`), and a cut one is resumed (`test_cut_body_without_length_*`).",
        "- After a disk-full stop, the summary and `sync_runs` counted 0 files downloaded even when some were.",
        "- A file at a target name that the database did not record (the user's own, or the only copy of a "
        "song after the database was lost) was replaced by `os.replace`; a planted link at a `.part` or "
        "sidecar name was written through to a file outside the library. Names now count files on disk too, "
        "temporary files refuse links (`O_EXCL | O_NOFOLLOW`), and only a file proven to be the clip (its "
        "tags, its recorded sha256) is adopted.",
        "- A cover placed but not yet recorded when a run was killed could not be proven to be the clip's; it"
        " is now placed after its audio, whose tags prove the stem.",
        "- A media server or an API body trickling a few bytes a second hung `sync` forever with the lock "
        "held: throughput is now judged on the bytes received, and each API request has an overall deadline.",
        "- A token JSON-escaped by the provider (`\\/`, `\\u002d`) slipped past redaction; so did credentials"
        " in URLs and a `--db` password in `archiver config`.",
        "- With the library folder unmounted, every archived file was marked missing and then failed on its "
        "expired link; sync now refuses a library whose files are all gone.",
        "",
        "Known gaps: none open.",
        "",
        "## Timings",
        "",
        "| part | seconds |",
        "|---|---:|",
        *[f"| {o.name} | {o.seconds:.0f} |" for o in outcomes],
        "",
    ]
    if failed:
        lines += ["## Problems", "", *[f"- {p}" for p in failed], ""]
    lines += [f"Reproduce: `{COMMAND}` (add `--seed N` for another storm; `--quick` for the CI scale).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/torture.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI scale, about 2 minutes; does not write the doc")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--doc", type=Path, default=None, help=f"where to write the report (default {DOC}, "
                                                                "full runs only)")
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    started = time.monotonic()
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="archiver-torture-") as tmp:
        work = Path(tmp)
        log = work / "properties.log"
        props_started = time.monotonic()
        props = start_properties(scale, log)
        try:
            print(f"fault storm ({scale.rounds * 13 + 1}+ clips) ...", flush=True)
            outcomes += storm_and_rebuild(scale, args.seed, work)
            print(f"crash safety ({scale.kills} kills) ...", flush=True)
            outcomes.append(crash(scale, args.seed, work))
            print(f"hostile library ({scale.hostile_tasks} tasks) ...", flush=True)
            outcomes.append(hostile_library(scale, args.seed, work))
            print(f"property tests ({scale.examples} examples each) ...", flush=True)
            outcomes.append(finish_properties(props, log, props_started))
            print("scenario tests ...", flush=True)
            outcomes.append(scenarios())
        finally:
            if props.poll() is None:
                props.kill()
                props.wait()
    seconds = time.monotonic() - started
    for outcome in outcomes:
        status = "ok" if not outcome.problems else f"{len(outcome.problems)} problem(s)"
        print(f"{outcome.name:<24} {outcome.seconds:6.0f} s  {status}")
        for problem in outcome.problems:
            print(f"    {problem}")
    lost = sum(o.lost_files + o.lost_rows for o in outcomes)
    failed = sum(len(o.problems) for o in outcomes)
    print(f"files lost {sum(o.lost_files for o in outcomes)}, rows lost {sum(o.lost_rows for o in outcomes)}, "
          f"failed checks {failed}; {seconds / 60:.1f} min")
    target = args.doc or (None if args.quick else DOC)
    if target is not None:
        target.write_text(render(outcomes, scale, args.seed, seconds), encoding="utf-8")
        print(f"wrote {target}")
    return 1 if lost or failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
