"""A library of many clips across the sources, driven through the CLI, and the check of every
byte and every row afterwards: a list of problems, empty when nothing was lost.

Used by the reliability tests and by `bench/torture.py`, so the small CI version and the long run
prove the same thing with the same code.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from ..fs import walk_library
from ..simulator import PROVIDERS, Simulator
from .catalog import Catalog, Row

SOURCES = ("ccapi-suno", "ccapi-producer", "mountsea", "acedata", "aimusicapi")
CONFIG = "connect_timeout = 2\nread_timeout = 1\n"  # short, so stalls cost about a second each
# The person running the tests may have ARCHIVER_* set: the in-process CLI must not see any of it.
BLANK: dict[str, str | None] = {k: None for k in os.environ if k.startswith("ARCHIVER_")}
SYNC = ("sync", "--now", "--until-done", "--interval", "0.05", "--timeout", "120", "--json")
# On a PostgreSQL catalog: a killed worker's claims lapse after this many seconds (not the default
# minute), so the run after a kill takes them over without a long wait.
LEASE = "2"


# ---------------------------------------------------------------------------- running the CLI


@dataclass
class Lib:
    """A library folder, its config file and the simulator it syncs from; keeps every output.

    Its catalog is the SQLite file in the folder, or the PostgreSQL database at `db_url`.
    """

    sim: Simulator
    root: Path
    config: Path
    outputs: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)  # tracebacks that escaped the CLI
    db_url: str | None = None  # a PostgreSQL catalog (every run gets it as ARCHIVER_DB)

    @classmethod
    def create(cls, sim: Simulator, where: Path, config: str = CONFIG, db_url: str | None = None) -> "Lib":
        where.mkdir(parents=True, exist_ok=True)
        cfg = where / "config.toml"
        cfg.write_text(config, encoding="utf-8")
        cfg.chmod(0o600)
        return cls(sim, where / "library", cfg, db_url=db_url)

    @property
    def db(self) -> Path:
        """The SQLite file (unused when the catalog is on PostgreSQL)."""
        return self.root / "archiver.db"

    @property
    def catalog(self) -> Catalog:
        return Catalog(self.db_url) if self.db_url else Catalog.sqlite(self.db)

    def _db_env(self) -> dict[str, str | None]:
        if self.db_url:
            return {"ARCHIVER_DB": self.db_url, "ARCHIVER_LEASE": LEASE}
        return {"ARCHIVER_DB": None}

    def env(self) -> dict[str, str]:
        """What a subprocess needs: the simulator's URLs and tokens, this library, config and catalog."""
        found = {**self.sim.env(), "ARCHIVER_LIBRARY": str(self.root), "ARCHIVER_CONFIG": str(self.config)}
        return found | {k: v for k, v in self._db_env().items() if v is not None}

    def cli(self, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
        """The real click CLI in this process; an escaped exception is recorded, not raised."""
        from archiver.cli import cli

        result = CliRunner().invoke(cli, ["--config", str(self.config), "--library", str(self.root), *args],
                                    env={**BLANK, **self.sim.env(), **self._db_env(), **(env or {})}, input=input,
                                    catch_exceptions=True)
        self.outputs.append(result.output)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            self.crashes.append("".join(traceback.format_exception(*result.exc_info)))  # type: ignore[misc]
        return result

    def sync(self, *extra: str, env: dict[str, str] | None = None, once: bool = False) -> tuple[int, dict[str, Any]]:
        """One `archiver sync --json` run (one pass with `once`): exit code and summary ({} if none)."""
        result = self.cli(*(("sync", "--now", "--json") if once else SYNC), *extra, env=env)
        lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        return result.exit_code, json.loads(lines[-1]) if lines else {}

    def query(self, sql: str, *params: Any) -> list[Row]:
        """The rows of one statement (`?` placeholders) on this library's catalog."""
        return self.catalog.rows(sql, *params)

    def integrity(self) -> str:
        """"ok", or what the catalog's engine found wrong with it (Catalog.integrity)."""
        return self.catalog.integrity()


# ---------------------------------------------------------------------------- the library


@dataclass
class Plan:
    """What the simulator holds, and so what the library must end up with."""

    tasks: list[tuple[str, str]] = field(default_factory=list)  # succeed at the provider
    provider_failed: list[tuple[str, str]] = field(default_factory=list)  # the provider reports failure
    unknown: list[tuple[str, str]] = field(default_factory=list)  # ids the provider never heard of
    gone: set[str] = field(default_factory=set)  # clips whose media answers 404 forever
    faults: Counter[str] = field(default_factory=Counter)

    @property
    def all_tasks(self) -> list[tuple[str, str]]:
        return self.tasks + self.provider_failed + self.unknown


def sim_clips(sim: Simulator, source: str, task_id: str) -> list[Any]:
    """The simulator's clips of a task (its private table: the truth to compare against)."""
    return list(sim._tasks[(source, task_id)].clips)


def populate(lib: Lib, rounds: int, rng: random.Random, *, big_audio: int = 300_000) -> Plan:
    """`rounds` x 13 clips over the five sources (3 per task, MountSea 1) plus the odd cases.

    Every other CCAPI-suno and MountSea task serves a padded MP3 of `big_audio` bytes, so a cut
    body is long enough for the duration check to see it. One task lies about its duration,
    one fails at the provider, one id is unknown to it.
    """
    plan = Plan()
    for number in range(rounds):
        for source in SOURCES:
            big = source in ("ccapi-suno", "mountsea") and number % 2 == 0
            task_id = lib.sim.add_task(source, clips=3, steps=rng.randint(0, 2),
                                       audio_bytes=big_audio if big else None)
            plan.tasks.append((source, task_id))
    plan.tasks.append(("mountsea", lib.sim.add_task("mountsea", steps=0, duration_lie=600.0)))
    plan.provider_failed.append(("acedata", lib.sim.add_task("acedata", outcome="failed", steps=1)))
    plan.unknown.append(("ccapi-producer", f"task_unknown{rng.getrandbits(64):016x}"))
    by_source: dict[str, list[str]] = {}
    for source, task_id in plan.all_tasks:
        by_source.setdefault(source, []).append(task_id)
    for source, ids in by_source.items():
        result = lib.cli("add", source, *ids)
        assert result.exit_code == 0, result.output
    age_unknown(lib, plan)
    return plan


def age_unknown(lib: Lib, plan: Plan) -> None:
    """The unknown ids have been not-found for over a week already: their next 404 fails them
    for good, as a warning (before that, each 404 is an error of the run)."""
    from datetime import datetime, timedelta, timezone

    from archiver.store import NOT_FOUND_AFTER, NOT_FOUND_POLLS

    since = (datetime.now(timezone.utc) - NOT_FOUND_AFTER - timedelta(hours=1)).isoformat(timespec="microseconds")
    lib.catalog.executemany("UPDATE tasks SET not_found_since = ?, poll_errors = ? WHERE source = ? AND task_id = ?",
                            [(since, NOT_FOUND_POLLS - 1, source, task_id) for source, task_id in plan.unknown])


API_FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("429", {"retry_after": 1}), ("429", {"retry_after": "date"}), ("500", {"times": 3}),
    ("502", {"times": 2}), ("503", {"times": 2, "retry_after": 1}), ("reset", {}),
    ("stall", {"delay": 1.5}), ("html200", {}), ("malformed", {}), ("unknown_status", {"times": 2}),
]
MEDIA_FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("truncate", {}), ("drop", {}), ("no_length", {}), ("stall", {"delay": 1.5}), ("html200", {}),
    ("500", {"times": 2}), ("502", {}), ("503", {}), ("429", {"retry_after": 1}), ("reset", {}),
    ("expire", {}),
]


def inject_storm(sim: Simulator, plan: Plan, rng: random.Random, waves: int = 1) -> None:
    """Every fault kind, API and media, `waves` times; one clip's media never heals.

    API faults are per provider, so each provider's requests meet the whole list in turn.
    Media faults hit whichever file of the provider is fetched next, or a chosen clip: a cut
    body without Content-Length on a long MP3 (the duration check), an expired link.
    """
    for _ in range(waves):
        for provider in PROVIDERS:
            for kind, options in API_FAULTS:
                sim.inject(kind, target="api", provider=provider, **options)
                plan.faults[f"api {kind}"] += options.get("times", 1)
        for kind, options in MEDIA_FAULTS:
            for provider in rng.sample(PROVIDERS, 2):
                sim.inject(kind, target="media", provider=provider, **options)
                plan.faults[f"media {kind}"] += options.get("times", 1)
        long_mp3 = [c.clip_id for s, t in plan.tasks if s == "mountsea"
                    for c in sim_clips(sim, s, t) if c.audio.size > 100_000]
        for clip_id in rng.sample(long_mp3, min(2, len(long_mp3))):
            sim.inject("no_length", clip_id=clip_id)
            plan.faults["media no_length (long mp3)"] += 1
        source, task_id = rng.choice(plan.tasks)
        sim.inject("expire", clip_id=sim_clips(sim, source, task_id)[0].clip_id)
        plan.faults["media expire"] += 1
    candidates = [c.clip_id for s, t in plan.tasks if s == "ccapi-suno" for c in sim_clips(sim, s, t)]
    gone = rng.choice(candidates)
    sim.inject("gone", clip_id=gone, times=-1)
    plan.gone.add(gone)
    plan.faults["media gone (never heals)"] += 1


def storm(lib: Lib, plan: Plan, max_runs: int = 8) -> list[int]:
    """Sync until everything recoverable is archived (at least two runs); the exit codes."""
    codes: list[int] = []
    for run in range(max_runs):
        code, _summary = lib.sync()
        codes.append(code)
        if run >= 1 and not pending_recoverable(lib, plan):
            break
    return codes


def pending_recoverable(lib: Lib, plan: Plan) -> int:
    """Assets of clips that can be archived but are not yet."""
    if not lib.catalog.exists():
        return 1
    marks = ",".join("?" * len(plan.gone)) or "''"
    rows = lib.query("SELECT COUNT(*) FROM assets a JOIN clips c ON c.id = a.clip_pk "
                     f"WHERE a.state != 'downloaded' AND c.clip_id NOT IN ({marks})", *plan.gone)
    unfinished = lib.query("SELECT COUNT(*) FROM tasks WHERE status NOT IN ('succeeded','failed','cancelled')")
    return int(rows[0][0]) + int(unfinished[0][0])


# ---------------------------------------------------------------------------- checking


def strip_id3(data: bytes) -> bytes:
    """MPEG audio frames of an MP3: what tagging must never change."""
    if data[:3] == b"ID3":
        size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]
        data = data[10 + size + (10 if data[5] & 0x10 else 0):]
    return data[:-128] if data[-128:-125] == b"TAG" else data


def mp4_media(data: bytes) -> bytes:
    """The sample data of an MP4/M4A (its `mdat` atoms): tagging rewrites `moov`, never these."""
    out, pos = [], 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        header = 8
        if size == 1:
            size, header = int.from_bytes(data[pos + 8:pos + 16], "big"), 16
        elif size == 0:
            size = len(data) - pos
        if size < header:
            break
        if data[pos + 4:pos + 8] == b"mdat":
            out.append(data[pos + header:pos + size])
        pos += size
    return b"".join(out)


def audio_essence(data: bytes, ext: str) -> bytes:
    """What must be identical between the served file and the archived, tagged one."""
    if ext == "mp3":
        return strip_id3(data)
    if ext in ("m4a", "mp4"):
        return mp4_media(data)
    return data


@dataclass
class Figures:
    """What a check found: counts for the report, and every problem (none = nothing lost)."""

    files: int = 0
    clips: int = 0
    rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def lost_files(self) -> int:
        return sum(1 for p in self.problems if p.startswith("file"))

    @property
    def lost_rows(self) -> int:
        return sum(1 for p in self.problems if p.startswith("row"))


def check_library(lib: Lib, plan: Plan, foreign: frozenset[str] = frozenset()) -> Figures:
    """Every recoverable clip archived intact, every unrecoverable one reported, nothing extra.

    Problems start with "file" (a file missing, changed, partial or extra, a symbolic link) or
    "row" (a row missing, wrong or duplicated) or "other". `foreign` names paths (relative to the
    root) that the user put there: files and links the library must leave alone, not report.
    """
    figures = Figures()
    problems = figures.problems
    if not lib.catalog.exists():
        return Figures(problems=["row: no database"])
    if (check := lib.integrity()) != "ok":
        problems.append(f"row: integrity check says {check}")
    for table, key in (("tasks", "source, task_id"), ("clips", "source, clip_id"), ("assets", "clip_pk, kind")):
        for row in lib.query(f"SELECT {key}, COUNT(*) FROM {table} GROUP BY {key} HAVING COUNT(*) > 1"):
            problems.append(f"row: duplicate {table} row {tuple(row)}")
    tasks = {(r["source"], r["task_id"]): r for r in lib.query("SELECT * FROM tasks")}
    clips = {(r["source"], r["clip_id"]): r for r in lib.query("SELECT * FROM clips")}
    assets: dict[tuple[int, str], Row] = {(r["clip_pk"], r["kind"]): r for r in lib.query("SELECT * FROM assets")}
    figures.rows = len(tasks) + len(clips) + len(assets)
    for source, task_id in plan.tasks:
        task = tasks.get((source, task_id))
        if task is None or task["status"] != "succeeded":
            problems.append(f"row: task {source} {task_id} is {task['status'] if task else 'missing'}")
            continue
        for clip in sim_clips(lib.sim, source, task_id):
            found = clips.get((source, clip.clip_id))
            if found is None:
                problems.append(f"row: clip {source} {clip.clip_id} missing")
                continue
            figures.clips += 1
            if found["title"] != clip.title:
                problems.append(f"row: clip {clip.clip_id} title {found['title']!r} != {clip.title!r}")
            kinds = ("audio",) if source == "mountsea" else ("audio", "image")
            for kind in kinds:
                asset = assets.get((found["id"], kind))
                _check_asset(lib, clip, kind, asset, clip.clip_id in plan.gone, figures)
    for source, task_id in plan.provider_failed:
        task = tasks.get((source, task_id))
        if task is None or task["status"] != "failed" or not task["error"]:
            problems.append(f"row: provider-failed task {task_id} not recorded as failed with its reason")
    for source, task_id in plan.unknown:
        task = tasks.get((source, task_id))
        if task is None or task["status"] != "failed" or task["provider_status"] != "NOT_FOUND":
            problems.append(f"row: unknown task {task_id} not recorded as failed/NOT_FOUND")
    on_disk, parts, links = walk_library(lib.root)
    recorded = {r["path"] for r in assets.values() if r["state"] == "downloaded" and r["path"]}
    for path in sorted(on_disk - recorded - foreign):
        if not path.endswith((".txt", ".lrc")):
            problems.append(f"file: {path} on disk but not recorded (duplicate or partial?)")
    for part in parts:
        if part.relative_to(lib.root).as_posix() not in foreign:
            problems.append(f"file: leftover {part.relative_to(lib.root)}")
    for link in sorted(links - foreign):
        problems.append(f"file: {link} is a symbolic link the library made or kept")
    for row in assets.values():
        if row["state"] == "downloaded" and row["path"]:
            path = lib.root / row["path"]
            if not path.is_file():
                problems.append(f"file: {row['path']} recorded but missing")
                continue
            data = path.read_bytes()
            if len(data) != row["size"] or hashlib.sha256(data).hexdigest() != row["sha256"]:
                problems.append(f"file: {row['path']} differs from its recorded size/sha256")
    return figures


def _check_asset(lib: Lib, clip: Any, kind: str, asset: Row | None, gone: bool,
                 figures: Figures) -> None:
    problems = figures.problems
    if asset is None:
        problems.append(f"row: {kind} asset of {clip.clip_id} missing")
        return
    if gone:
        if asset["state"] != "failed" or asset["path"] is not None or not asset["last_error"]:
            problems.append(f"row: unrecoverable {kind} of {clip.clip_id} not reported as failed "
                            f"(state {asset['state']}, path {asset['path']})")
        return
    if asset["state"] != "downloaded" or not asset["path"]:
        problems.append(f"file: {kind} of {clip.clip_id} not archived ({asset['state']}: {asset['last_error']})")
        return
    path = lib.root / asset["path"]
    if not path.is_file():
        problems.append(f"file: {asset['path']} missing")
        return
    data, served = path.read_bytes(), lib.sim.media_bytes(asset["url"])
    ext = path.suffix.lstrip(".")
    same = data == served if kind == "image" else audio_essence(data, ext) == audio_essence(served, ext)
    if not same or (kind == "audio" and ext in ("mp3", "m4a") and not audio_essence(data, ext)):
        problems.append(f"file: {asset['path']} is not what the provider served")
    figures.files += 1


def snapshot(lib: Lib) -> dict[str, dict[str, Any]]:
    """Per archived clip: what rebuild must bring back from the files alone."""
    rows = lib.query(
        "SELECT t.source, t.task_id, c.clip_id, c.title, c.lyrics, c.duration, a.kind, a.path, a.sha256 "
        "FROM assets a JOIN clips c ON c.id = a.clip_pk JOIN tasks t ON t.id = c.task_pk "
        "WHERE a.state = 'downloaded'")
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = out.setdefault(r["clip_id"], {
            "source": r["source"], "task_id": r["task_id"], "title": r["title"], "lyrics": r["lyrics"],
            "duration": round(r["duration"], 2) if r["duration"] is not None else None})
        entry[f"{r['kind']}_path"], entry[f"{r['kind']}_sha256"] = r["path"], r["sha256"]
    return {k: v for k, v in out.items() if "audio_path" in v}  # a cover alone carries no provenance


def drop_database(lib: Lib) -> None:
    """The catalog lost (Catalog.drop)."""
    lib.catalog.drop()


def rebuild_matches(lib: Lib) -> list[str]:
    """Delete the database, `archiver rebuild`, compare with the snapshot; the differences."""
    before = snapshot(lib)
    drop_database(lib)
    result = lib.cli("rebuild")
    if result.exit_code != 0:
        return [f"rebuild exited {result.exit_code}: {result.output}"]
    after = snapshot(lib)
    problems = [f"row: clip {k} lost by rebuild" for k in before.keys() - after.keys()]
    problems += [f"row: clip {k} rebuilt as {after[k]} instead of {before[k]}"
                 for k in before.keys() & after.keys() if after[k] != before[k]]
    return problems


def no_tracebacks(lib: Lib) -> list[str]:
    found = [f"other: crash: {c.splitlines()[-1]}" for c in lib.crashes]
    found += [f"other: output shows {needle!r}" for text in lib.outputs
              for needle in ("Traceback", "internal error") if needle in text]
    return found


def media_requests_for(sim: Simulator, clip_id: str) -> int:
    return sum(1 for r in sim.requests if r.target == "media" and clip_id in r.path)
