"""bench/torture.py's hostile-library part: issue 12's faults over one library.

A careless user, a bad disk and a hostile provider at once: files the user owns at the names the
library is about to use, symbolic links planted at final, `.part` and `.txt.part` names (pointing
to files outside the library), media and API servers that trickle a byte at a time, API errors
that echo the token JSON-escaped, and the library folder absent (unmounted, or an empty mount
point) while the database, kept outside it, records files. Nothing the user owns may change,
every clip must end up archived and verified, and the token must appear nowhere.

A clip whose `.part` name is a planted link cannot be written under that name: archiver refuses
it and reports the clip as failed ("symbolic link") on every run. That is a reported failure, not
a loss: once the user removes the link, the next sync archives the clip, which this part checks.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archiver import fs
from archiver import testkit as harness
from archiver.simulator import PROVIDERS, Simulator

SYNC = ("sync", "--now", "--until-done", "--interval", "0.05", "--timeout", "120", "--json")
HARD_LIMIT = 240.0  # seconds: a sync still running then is hung (killed, and reported)
# what each title's planted things are; titles cycle through these roles
ROLES = ("user files", "final links", "part links", "lyrics links", "user files + lyrics link", "twins only")


@dataclass
class OutsideLib(harness.Lib):
    """A library whose database lives outside its folder, so the folder can go missing."""

    database: Path = Path()

    @property
    def db(self) -> Path:
        return self.database


@dataclass(frozen=True)
class Planted:
    """Something the user put in the library: its path (relative) and what it must still be."""

    rel: str
    link: bool
    content: bytes  # a file's bytes; for a link, the bytes of its target outside the library
    target: Path | None = None


def escaped(token: str, variant: int) -> str:
    """The token as a JSON string body would carry it, escaped three ways in turn."""
    if variant % 3 == 0:
        return token.replace("/", "\\/")
    if variant % 3 == 1:
        return token.replace("-", "\\u002d").replace("/", "\\/")
    return "".join(f"\\u{ord(c):04x}" for c in token)


def escaping_answer(served: Counter[str]) -> harness.Route:
    """A provider that answers 400 with the caller's token JSON-escaped in its error message."""

    def route(handler: harness._LoopbackHandler) -> None:
        token = handler.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        variant = sum(served.values())
        served[("`\\/`", "`\\u002d` and `\\/`", "every character as `\\uXXXX`")[variant % 3]] += 1
        text = escaped(token, variant)
        body = ('{"error": {"code": "bad_request", "message": "token ' + text + ' is not allowed"}, '
                '"msg": "' + text + '", "detail": "' + text + '"}').encode()
        handler.reply(400, body, "application/json")

    return route


def run(lib: harness.Lib, *args: str, env: dict[str, str] | None = None) -> tuple[int | None, str, float]:
    """One CLI run as its own process under a hard limit: exit code (None if hung), output, seconds."""
    started = time.monotonic()
    proc = harness.spawn(lib, *args, env=env)
    try:
        out, err = proc.communicate(timeout=HARD_LIMIT)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        code = None
    lib.outputs.append(out + err)
    return code, out + err, time.monotonic() - started


def plant(lib: harness.Lib, plan: harness.Plan, outside: Path, rng: random.Random) -> list[Planted]:
    """Per title, by its role: the user's files, or links to files outside, at the target names."""
    by_title: dict[str, set[tuple[str, str | None]]] = {}
    for source, task_id in plan.tasks:
        for clip in harness.sim_clips(lib.sim, source, task_id):
            image = None if source == "mountsea" else clip.image_ext
            by_title.setdefault(clip.title, set()).add((clip.audio_ext, image))
    planted: list[Planted] = []

    def user_file(rel: str) -> None:
        data = f"the user's own {rel}, not archiver's ".encode() + rng.randbytes(64)
        (lib.root / rel).write_bytes(data)
        planted.append(Planted(rel, False, data))

    def link(rel: str) -> None:
        target = outside / f"victim-{len(planted)}.bin"
        data = f"a file outside the library, behind {rel} ".encode() + rng.randbytes(4096)
        target.write_bytes(data)
        (lib.root / rel).symlink_to(target)
        planted.append(Planted(rel, True, data, target))

    for number, (title, formats) in enumerate(sorted(by_title.items())):
        role = ROLES[number % len(ROLES)]
        exts = sorted({ext for pair in formats for ext in pair if ext})
        if role.startswith("user files"):
            for ext in exts:
                user_file(f"{title}.{ext}")
        if role == "final links":
            for ext in exts:
                link(f"{title}.{ext}")
        if role == "part links":
            for ext in exts:
                link(f"{title}.{ext}.part")
        if role == "lyrics links":
            link(f"{title}.txt.part")
            link(f"{title}.txt")
        if role == "user files + lyrics link":
            link(f"{title}.txt.part")
    return planted


def damaged(lib: harness.Lib, planted: list[Planted], outside: Path, before: dict[Path, bytes]) -> list[str]:
    """Every planted file and every file outside the library as it was; each change is a lost file."""
    problems = []
    for item in planted:
        path = lib.root / item.rel
        if item.link:
            if item.target is not None and item.target.read_bytes() != item.content:
                problems.append(f"file: {item.target.name} outside the library was written through {item.rel}")
        elif path.is_symlink() or not path.is_file() or path.read_bytes() != item.content:
            problems.append(f"file: the user's {item.rel} was replaced or changed")
    for path, data in before.items():
        if not path.is_file() or path.read_bytes() != data:
            problems.append(f"file: {path.name} outside the library changed")
    now = {p for p in outside.rglob("*") if p.is_file()}
    problems += [f"file: {p.name} appeared outside the library" for p in sorted(now - set(before))]
    return problems


def table_rows(lib: harness.Lib) -> list[tuple[Any, ...]]:
    return [tuple(r) for table in ("tasks", "clips", "assets") for r in lib.query(f"SELECT * FROM {table} ORDER BY id")]


def leaks(tokens: list[str], where: str, text: str | bytes) -> list[str]:
    """The token, or a long piece of it, in `text`."""
    found = []
    for token in tokens:
        for needle in (token, token[8:24]):
            if (needle.encode() if isinstance(text, bytes) else needle) in text:
                found.append(f"other: {where} holds the token of {token.split('/')[1].split('-')[0]}")
                break
    return found


def pending(lib: harness.Lib) -> int:
    """Assets not archived for a reason other than a planted `.part` link, and tasks not done."""
    assets = lib.query("SELECT COUNT(*) FROM assets WHERE state != 'downloaded' "
                       "AND COALESCE(last_error, '') NOT LIKE '%symbolic link%'")
    tasks = lib.query("SELECT COUNT(*) FROM tasks WHERE status NOT IN ('succeeded','failed','cancelled')")
    return int(assets[0][0]) + int(tasks[0][0])


def hostile(tasks: int, trickles: int, max_runs: int, seed: int,
            work: Path) -> tuple[dict[str, Any], list[str], int, int]:
    """The part's figures, its problems, and the files and rows lost, for bench/torture.py."""
    rng = random.Random(seed + 2)
    tokens = {p: f"sk-live/{p}-{rng.getrandbits(128):032x}" for p in PROVIDERS}
    where = work / "hostile"
    outside = work / "hostile-outside"
    outside.mkdir(parents=True)
    problems: list[str] = []
    figures: dict[str, Any] = {}
    with Simulator(seed=rng.randrange(1 << 30), tokens=tokens) as sim, harness.Loopback() as echo:
        where.mkdir(parents=True)
        config = where / "config.toml"
        database = where / "elsewhere" / "archiver.db"
        database.parent.mkdir()
        config.write_text('connect_timeout = 2\nread_timeout = 1\nretry_budget = 12\n'
                          'path_template = "{title}.{ext}"\nlyrics_sidecar = true\n'
                          f'db = "{database}"\n', encoding="utf-8")
        config.chmod(0o600)
        lib = OutsideLib(sim, where / "library", config, database=database)
        lib.root.mkdir()
        plan = harness.Plan()
        titles = max(6, tasks // 2)
        for number in range(tasks):
            source = harness.SOURCES[number % len(harness.SOURCES)]
            title = f"Hostile {number % titles}"
            plan.tasks.append((source, sim.add_task(source, clips=3, steps=0, titles=[title])))
        for source in harness.SOURCES:
            ids = [t for s, t in plan.tasks if s == source]
            if ids and lib.cli("add", source, *ids).exit_code != 0:
                problems.append(f"other: add {source} failed")
        planted = plant(lib, plan, outside, rng)
        before = {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()}

        # 1. every provider JSON-escapes the token into its error answers
        served: Counter[str] = Counter()
        echo.fallback = escaping_answer(served)
        to_echo = {f"ARCHIVER_{p.upper()}_BASE_URL": echo.url(f"/{p}/") for p in PROVIDERS}
        codes = [run(lib, "sync", "--now", env=to_echo)[0], run(lib, "sync", "--now", "--json", env=to_echo)[0]]
        for args in (("tasks", "--format", "json"), ("tasks",), ("stats", "--format", "json"), ("stats",)):
            lib.cli(*args)
        for source, task_id in plan.tasks[:5]:
            lib.cli("show", task_id, "--format", "json")
        if codes != [1, 1]:
            problems.append(f"other: syncs against escaped-token errors exited {codes}, not 1")

        # 2. trickling servers: for the first run one API and the media of `trickles` clips trickle
        # forever (the run must end by itself, exit 1), and a few more answers trickle once
        # (retried within the run); then syncs until everything recoverable is archived
        slow_api = rng.choice(PROVIDERS)
        sim.inject("trickle", target="api", provider=slow_api, times=-1)
        others = [c.clip_id for s, t in plan.tasks if not s.startswith(slow_api)
                  for c in harness.sim_clips(sim, s, t)]
        for clip_id in rng.sample(others, min(trickles, len(others))):
            sim.inject("trickle", target="media", clip_id=clip_id, times=-1, delay=0.05)
        for provider in rng.sample([p for p in PROVIDERS if p != slow_api], 2):
            sim.inject("trickle", target="media", provider=provider, times=trickles, delay=0.05)
            sim.inject("trickle", target="api", provider=provider, times=1)
        took: list[float] = []
        stalled = timed_out = 0
        for attempt in range(max_runs):
            code, output, seconds = run(lib, *(SYNC if attempt else ("sync", "--now", "--json")))
            codes.append(code)
            took.append(seconds)
            if code is None:
                problems.append(f"other: a sync with trickling servers still ran after {HARD_LIMIT:.0f} s")
                break
            if attempt == 0:
                stalled = sum(1 for line in output.splitlines() if line.startswith("error:") and "stalled" in line)
                timed_out = sum(1 for line in output.splitlines()
                                if line.startswith(f"error: {slow_api}") and "timed out" in line)
                if code != 1 or not stalled or not timed_out:
                    problems.append(f"other: the run with servers trickling forever exited {code} with "
                                    f"{stalled} stalled and {timed_out} timed-out errors")
                sim.clear_faults()
            elif not pending(lib):
                break
        trickled = Counter(r.target for r in sim.requests if r.fault == "trickle")

        # 3. with everything still planted: nothing the user owns changed; `.part` links reported
        problems += damaged(lib, planted, outside, before)
        blocked = lib.query("SELECT a.path, a.last_error, c.clip_id FROM assets a JOIN clips c ON c.id = a.clip_pk "
                            "WHERE a.state != 'downloaded'")
        part_links = [p for p in planted if p.link and p.rel.endswith(".part") and ".txt." not in p.rel]
        for row in blocked:
            if "symbolic link" not in (row["last_error"] or ""):
                problems.append(f"file: {row['clip_id']} not archived: {row['last_error']}")
        if part_links and not blocked:
            problems.append("other: no clip met a planted .part link (the names did not collide)")

        # 4. the user removes the reported `.part` links: the next sync archives every clip
        for item in part_links:
            (lib.root / item.rel).unlink(missing_ok=True)
        code, _output, seconds = run(lib, *SYNC)
        codes.append(code)
        took.append(seconds)
        foreign = frozenset(p.rel for p in planted if (lib.root / p.rel).is_symlink() or (lib.root / p.rel).exists())
        check = harness.check_library(lib, plan, foreign)
        problems += check.problems + damaged(lib, planted, outside, before)
        verify = lib.cli("verify").output
        if not re.search(r"\b0 missing, 0 changed\b", verify) or "symlink:" in verify:
            problems.append(f"file: verify found {verify.strip().splitlines()[-1:]}")

        # 5. the library folder absent (unmounted, or an empty mount point) while every link expired
        refusals = 0
        rows = table_rows(lib)
        saved = where / "unmounted"
        sim.inject("gone", target="media", times=-1)
        for absent in ("missing", "emptied"):
            shutil.move(str(lib.root), saved)
            if absent == "emptied":
                lib.root.mkdir()
            code, output, _ = run(lib, "sync", "--now")
            if code == 1 and "is its disk mounted" in output:
                refusals += 1
            else:
                problems.append(f"other: a sync on a {absent} library exited {code}: {output.strip()[-200:]}")
            if table_rows(lib) != rows:
                problems.append(f"row: a sync on a {absent} library changed the database")
            if absent == "emptied" and any(p.name not in fs.SKIP_NAMES for p in lib.root.iterdir()):
                problems.append("file: a sync on an empty mount point wrote into it")
            shutil.rmtree(lib.root, ignore_errors=True)
            shutil.move(str(saved), lib.root)
        sim.clear_faults()
        code, summary = lib.sync(once=True)
        if code != 0 or summary.get("files_downloaded", 0) != 0:
            problems.append(f"other: the sync after remounting exited {code} with {summary.get('files_downloaded')} "
                            "downloads (expected 0 and none)")
        after = harness.check_library(lib, plan, foreign)
        problems += [p for p in after.problems if p not in check.problems]

        # 6. the token, escaped or not, nowhere: every output, the database file and its WAL
        secret = list(tokens.values())
        for number, text in enumerate(lib.outputs):
            problems += leaks(secret, f"output #{number}", text)
        for path in database.parent.iterdir():
            problems += leaks(secret, path.name, path.read_bytes())
        problems += harness.no_tracebacks(lib)
        redacted = sum(1 for text in lib.outputs if "<redacted>" in text)
        if served and not redacted:
            problems.append("other: escaped-token errors were served but no output shows <redacted>")

        kinds = Counter("user file" if not p.link else "link at .txt / .txt.part" if ".txt" in p.rel
                        else "link at .part" if p.rel.endswith(".part") else "link at a final name" for p in planted)
        figures = {
            "clips": sum(len(harness.sim_clips(sim, s, t)) for s, t in plan.tasks), "tasks": len(plan.tasks),
            "titles": titles, "planted": dict(sorted(kinds.items())),
            "reported: .part link in the way": len(blocked),
            "trickled requests": dict(sorted(trickled.items())), "stalled errors": stalled,
            "API timed-out errors": timed_out,
            "longest sync (s)": round(max(took or [0.0]), 1), "exit codes": codes,
            "escaped-token answers": dict(sorted(served.items())), "outputs with <redacted>": redacted,
            "outputs searched": len(lib.outputs), "absent-library refusals": refusals,
            "files verified": after.files, "clips verified": after.clips, "rows": after.rows,
            "verify": verify.strip().splitlines()[-1] if verify.strip() else "",
        }
    lost_files = sum(1 for p in problems if p.startswith("file"))
    lost_rows = sum(1 for p in problems if p.startswith("row"))
    return figures, problems, lost_files, lost_rows
