"""Items 5 and 6: start-up and the read path, measured through the command line only.

What each command imports is read from `-X importtime`; the SQL a read command runs is captured
from its own sqlite connections (bench/sqltrace.py) and handed to the `sqlite3` shell, so the
comparison holds whichever way archiver reads its database.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sqlite3
import sys
from pathlib import Path

from . import breakdown
from .harness import REPO, CommandFailed, Sample, archiver_command, child_env, measure, median
from .items import Bench, fmt_s, ratio
from .report import Check, Section

HEAVY = breakdown.HEAVY
IMPORTS = 'python -c "import archiver.sync, archiver.archive"'  # what a sync loads before any work, today
SEARCH_WORD = "rain"
TARGETS = {"ls": 1.5, "search": 2.0, "show": 3.0}  # issue 14: × sqlite3, × sqlite3, × python -c pass


def _read_commands(bench: Bench) -> dict[str, list[str]]:
    """Every command that only reads, with arguments that make it do its real work on the big library."""
    return {"ls --format json": ["ls", "--format", "json"],
            f"search {SEARCH_WORD} --format json": ["search", SEARCH_WORD, "--format", "json"],
            "show ID": ["show", _some_clip(bench)], "stats": ["stats"], "tasks": ["tasks"],
            "export json": ["export", "json"], "config": ["config"], "--help": ["--help"]}


def _some_clip(bench: Bench) -> str:
    """A clip id from the middle of the library the bench built."""
    library = bench.library()
    conn = sqlite3.connect(f"file:{library.db}?mode=ro", uri=True)
    try:
        return str(conn.execute("SELECT clip_id FROM clips ORDER BY id LIMIT 1 OFFSET ?",
                                (library.clips // 2,)).fetchone()[0])
    finally:
        conn.close()


def _library_env(bench: Bench, name: str) -> dict[str, str]:
    return child_env({"ARCHIVER_CONFIG": str(bench.config(name)), "ARCHIVER_LIBRARY": str(bench.library().root)})


# --- 5. start-up ---------------------------------------------------------------------------------


def startup(bench: Bench) -> Section:
    """Item 5: --help/--version vs python -c pass, and the heavy modules every read command imports."""
    plan = bench.plan
    library = bench.library()
    section = Section(
        title="Start-up",
        intro=(f"Wall time of the installed `archiver` script against `python -c pass` on the same "
               f"interpreter, {plan.startup_runs} runs each, interleaved (medians). Then every read command "
               f"on the {library.clips:,}-clip library, {plan.runs} runs each: which heavy packages it "
               f"imports ({', '.join(HEAVY)}) and what its imports cost, both from one run under "
               "`python -X importtime`."),
        columns=["command", "wall (median)", "vs python -c pass", "heavy modules imported", "import time"],
    )
    env = child_env({"ARCHIVER_CONFIG": str(bench.config("startup"))})
    commands = {"python -c pass": [sys.executable, "-c", "pass"],
                "archiver --help": [*archiver_command(), "--help"],
                "archiver --version": [*archiver_command(), "--version"],
                IMPORTS: [sys.executable, "-c", IMPORTS.split('"')[1]]}
    walls: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(plan.startup_runs):
        for name, cmd in commands.items():
            sample = measure(cmd, env=env, cwd=REPO, check=False)
            if sample.returncode == 0:
                walls[name].append(sample.wall)
    base = median(walls["python -c pass"])
    bench.results["python_pass"] = base
    for name, cmd in commands.items():
        heavy, cost = "", ""
        if name.startswith("archiver"):
            found = breakdown.imports(cmd, env)
            heavy, cost = ", ".join(found.heavy) or "none", f"{found.total:.3f} s"
            section.checks.append(Check(f"start-up: `{name}` imports none of {', '.join(HEAVY)}",
                                        heavy, not found.heavy))
        wall = median(walls[name])
        section.rows.append([f"`{name}`", fmt_s(wall) if walls[name] else "failed", f"{ratio(wall, base):.2f}×",
                             heavy, cost])
    lib_env = _library_env(bench, "startup-read")
    offenders: list[str] = []
    for label, args in _read_commands(bench).items():
        if label == "--help":
            continue  # measured above
        cmd = [*archiver_command(), *args]
        samples = [measure(cmd, env=lib_env, timeout=300) for _ in range(plan.runs)]
        found = breakdown.imports(cmd, lib_env)
        if found.heavy:
            offenders.append(f"{label.split()[0]}: {', '.join(found.heavy)}")
        wall = median([s.wall for s in samples])
        section.rows.append([f"`archiver {label}`", fmt_s(wall), f"{ratio(wall, base):.2f}×",
                             ", ".join(found.heavy) or "none", f"{found.total:.3f} s"])
    section.checks.append(Check("start-up: ls, search, show, stats, tasks, export, config, --help import none of "
                                + ", ".join(HEAVY), "; ".join(offenders) or "none", not offenders))
    section.notes.append(f"`{IMPORTS}` is not a target: it is what a sync loaded before doing anything when "
                         "this row was added. Import times come from `-X importtime`, which adds its own "
                         "overhead; they show proportions, not exact costs.")
    return section


# --- 6. the read path ----------------------------------------------------------------------------


def browse(bench: Bench) -> Section:
    """Item 6: ls and search vs the sqlite3 shell running the same SQL; show vs python -c pass."""
    plan = bench.plan
    library = bench.library()
    runs = plan.startup_runs  # millisecond figures on a shared machine: many interleaved runs
    section = Section(
        title="The read path",
        intro=(f"On the {library.clips:,}-clip library: `archiver ls --format json` (every clip) and "
               f"`archiver search {SEARCH_WORD} --format json` (FTS5, best 50), each against the `sqlite3` "
               "shell running the same SQL on the same file with `-json` output; the SQL is what the "
               "command itself ran, captured from its sqlite connections in one extra run "
               "(bench/sqltrace.py), its reads replayed by the shell (`ls --format json` has SQLite build "
               "each object with json_object; the shell runs that listing as plain columns, which its "
               "`-json` mode encodes). `archiver show ID` (one clip) "
               "against `python -c pass`. Output goes to a file. Runs interleaved; medians of "
               f"{runs}."),
        columns=["command", "wall (median)", "CPU", "reference", "reference wall", "ratio", "target", "rows"],
    )
    env = _library_env(bench, "browse")
    sqlite = shutil.which("sqlite3")
    commands = _read_commands(bench)
    cases = {"ls": commands["ls --format json"], "search": commands[f"search {SEARCH_WORD} --format json"],
             "show": commands["show ID"]}
    scripts: dict[str, Path] = {}
    captured: dict[str, Path] = {}
    for name in ("ls", "search", "show"):
        script = _capture_sql(bench, cases[name], env, name)
        if script is None:
            section.notes.append(f"**`archiver {name}` ran no SQL through Python's sqlite3: its reference "
                                 "could not be captured.**")
            continue
        if name == "ls":
            script = _columns_instead_of_json(script)
        captured[name] = script
        if sqlite and name != "show":
            scripts[name] = script
    ours: dict[str, list[Sample]] = {name: [] for name in cases}
    theirs: dict[str, list[Sample]] = {name: [] for name in cases}
    floors: dict[str, list[Sample]] = {name: [] for name in captured}
    bare: dict[str, list[Sample]] = {name: [] for name in captured}
    for _ in range(runs):
        theirs["show"].append(measure([sys.executable, "-c", "pass"], env=env))
        for name, args in cases.items():
            ours[name].append(bench.archiver(*args, env=env))
            if name in scripts:
                theirs[name].append(measure([sqlite or "sqlite3", "-readonly", "-json", str(library.db),
                                             f".read {scripts[name]}"]))
            if name in captured:
                floor = [sys.executable, str(REPO / "bench" / "floor_read.py")]
                floors[name].append(measure([*floor, str(library.db), str(captured[name])], env=env))
                bare[name].append(measure([*floor, "--bare", str(library.db), str(captured[name])], env=env))
    for name, args in cases.items():
        a_wall = median([s.wall for s in ours[name]])
        r_wall = median([s.wall for s in theirs[name]])
        reference = "python -c pass" if name == "show" else "sqlite3, same SQL"
        rows = _rows(ours[name][-1].stdout) if name != "show" else 1
        if name in scripts and _result_rows(theirs[name][-1].stdout) != rows:
            section.notes.append(f"**`archiver {name}` printed {rows} rows, the sqlite3 shell "
                                 f"{_result_rows(theirs[name][-1].stdout)} running its SQL.**")
        met = bool(theirs[name]) and a_wall <= TARGETS[name] * r_wall
        section.rows.append([f"`archiver {' '.join(args)}`" if name != "show" else "`archiver show ID`",
                             fmt_s(a_wall), fmt_s(median([s.cpu for s in ours[name]])), f"`{reference}`",
                             fmt_s(r_wall) if theirs[name] else "absent",
                             f"{ratio(a_wall, r_wall):.1f}×" if theirs[name] else "", f"≤ {TARGETS[name]}×",
                             f"{rows:,}"])
        section.checks.append(Check(f"read path: `archiver {name}` ≤ {TARGETS[name]}× {reference}",
                                    f"{ratio(a_wall, r_wall):.2f}× ({fmt_s(a_wall)} vs {fmt_s(r_wall)})"
                                    if theirs[name] else "no reference", met))
        if not met:
            _explain(bench, section, name, args, env, a_wall, r_wall, reference)
            if floors.get(name):
                section.notes.append(_against_python(bench, name, args, env, captured[name], a_wall, r_wall,
                                                     reference, floors[name], bare[name], theirs["show"]))
    return section


def _explain(bench: Bench, section: Section, name: str, args: list[str], env: dict[str, str],
             wall: float, floor: float, reference: str) -> None:
    """A missed read target: its floor, the imports, and the main thread's profile by package."""
    found = breakdown.imports([*archiver_command(), *args], env)
    groups = breakdown.profile(args, env, bench.work, sys.executable)
    base = bench.results.get("python_pass")
    section.notes.append(
        f"**Where `archiver {name}`'s {fmt_s(wall)} goes.** Floor: {reference} takes {fmt_s(floor)}"
        + (f" (its whole run, start included; Python's own start, `python -c pass`, is {fmt_s(base)})"
           if base and name != "show" else "") + f"; {breakdown.describe_imports(found)}; heavy modules loaded: "
        f"{', '.join(found.heavy) or 'none'}. Under cProfile (one extra run), by package: "
        + breakdown.describe_profile(groups, wall) + ".")


def _against_python(bench: Bench, name: str, args: list[str], env: dict[str, str], script: Path,
                    a_wall: float, r_wall: float, reference: str, floors: list[Sample],
                    bare: list[Sample], passes: list[Sample]) -> str:
    """A missed read target against the least a Python program does: the same SQL with nothing
    else imported, then with click, then the standard modules archiver's code adds on top."""
    bound = TARGETS[name]
    b_wall = median([s.wall for s in bare])
    f_wall = median([s.wall for s in floors])
    verdict = ("so no Python program answering through sqlite3 meets the bound" if b_wall > bound * r_wall
               else "so a Python program can meet the bound only by importing little more than that")
    text = (f"**`archiver {name}` against plain Python:** the interpreter, the same SQL through sqlite3 and "
            f"rows through `json.dumps`, with nothing else imported (bench/floor_read.py --bare), takes "
            f"{fmt_s(b_wall)}: {ratio(b_wall, r_wall):.2f}× {reference} against a bound of {bound}×, "
            f"{verdict}. With `import click` as well (the CLI library archiver is built on: the least any "
            f"command built on click does) it takes {fmt_s(f_wall)}, {ratio(f_wall, r_wall):.2f}×; "
            f"archiver takes {ratio(a_wall, f_wall):.2f}× that.")
    extra = _stdlib_beyond(args, env, bench.library().db, script)
    if extra and passes:
        runs = bench.plan.startup_runs
        try:
            loads = [measure([sys.executable, "-c", f"import {', '.join(extra)}"], env=env) for _ in range(runs)]
        except CommandFailed as exc:
            return text + f" (The standard modules it loads beyond that could not be timed: {exc}.)"
        cost = median([s.wall for s in loads]) - median([s.wall for s in passes])
        text += (f" Of the standard library, `archiver {name}` also loads {', '.join(extra)} (what its "
                 f"configuration, field tables and query code are written with, and click's own), which "
                 f"take {fmt_s(max(cost, 0.0))} to import on their own (`python -c \"import ...\"` "
                 f"against `python -c pass`, medians of {runs}).")
    return text


def _stdlib_beyond(args: list[str], env: dict[str, str], db: Path, script: Path) -> list[str]:
    """The top-level standard modules `archiver ARGS` imports that the bare floor does not."""
    ours = breakdown.imports([*archiver_command(), *args], env).packages
    floor = breakdown.imports([sys.executable, str(REPO / "bench" / "floor_read.py"), "--bare",
                               str(db), str(script)], env).packages
    return sorted(m for m in ours if m in sys.stdlib_module_names and not m.startswith("_")
                  and m not in floor and importlib.util.find_spec(m) is not None)  # `nt`: tried, absent here


READS = re.compile(r"^\s*(SELECT|WITH|VALUES)\b", re.IGNORECASE)


def _capture_sql(bench: Bench, args: list[str], env: dict[str, str], name: str) -> Path | None:
    """The read statements `archiver ARGS` runs, as a script for the sqlite3 shell."""
    trace = bench.work / f"sql-{name}.json"
    try:
        measure([sys.executable, str(REPO / "bench" / "sqltrace.py"), str(trace), *args], env=env, timeout=300)
        statements = json.loads(trace.read_text(encoding="utf-8"))
    except (CommandFailed, OSError, ValueError):
        return None
    reads = [s.strip().rstrip(";") for s in statements if READS.match(s) and "sqlite_master" not in s]
    if not reads:
        return None
    script = bench.work / f"sql-{name}.sql"
    script.write_text("".join(f"{s};\n" for s in reads), encoding="utf-8")
    return script


def _columns_instead_of_json(script: Path) -> Path:
    """`ls --format json` has SQLite build each object (json_object); the shell's reference runs
    the same listing as plain columns, which its own -json output encodes."""
    from archiver.library import CLIP_FROM, CLIP_SELECT
    from archiver.query import compile_sort

    plain = f"{CLIP_SELECT}{CLIP_FROM} ORDER BY {compile_sort(())}".strip()
    statements = [s for s in script.read_text(encoding="utf-8").split(";\n") if s.strip()]
    replaced = [plain if "json_object(" in s else s for s in statements]
    out = script.with_name(script.stem + "-columns.sql")
    out.write_text("".join(f"{s};\n" for s in replaced), encoding="utf-8")
    return out


def _rows(stdout: str) -> int:
    data = json.loads(stdout or "[]")
    return len(data) if isinstance(data, list) else 1


def _result_rows(stdout: str) -> int:
    """Rows of the biggest JSON array the sqlite3 shell printed (one per statement that returned rows)."""
    decoder, position, best = json.JSONDecoder(), 0, 0
    text = stdout.strip()
    while position < len(text):
        value, position = decoder.raw_decode(text, position)
        best = max(best, len(value) if isinstance(value, list) else 1)
        while position < len(text) and text[position].isspace():
            position += 1
    return best
