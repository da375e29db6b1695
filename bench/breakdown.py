"""Where a command's time goes, seen from outside: its imports and a profile grouped by package.

Both work on whatever archiver is installed, through its command line only: `-X importtime`
(as the environment variable PYTHONPROFILEIMPORTTIME) lists every module a command loads and what
each cost, and `python -m cProfile -m archiver ...` gives the main thread's time, summed here
per package (SQLAlchemy, pydantic, archiver.store, the import machinery, sqlite's C code...).
"""

from __future__ import annotations

import pstats
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .harness import REPO, measure

HEAVY = ("sqlalchemy", "sqlmodel", "pydantic", "httpx", "pycurl", "mutagen")


@dataclass(frozen=True)
class Imports:
    """What one run of a command imported: heavy packages loaded, and the import time per package."""

    heavy: list[str]
    total: float  # seconds, all top-level imports (as -X importtime counts, with its own overhead)
    packages: dict[str, float]  # top-level package -> seconds, its first (outermost) import


def imports(cmd: Sequence[str], env: Mapping[str, str]) -> Imports:
    """Run `cmd` once with import timing on and read its stderr."""
    sample = measure(cmd, env=dict(env) | {"PYTHONPROFILEIMPORTTIME": "1"}, check=False, timeout=600)
    loaded: set[str] = set()
    packages: dict[str, float] = {}
    total = 0.0
    for line in sample.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line.split("|")
        if len(parts) < 3 or not parts[1].strip().isdigit():
            continue  # the header line
        name = parts[2][1:] if parts[2].startswith(" ") else parts[2]
        top = name.strip().split(".")[0]
        loaded.add(top)
        cumulative = int(parts[1]) / 1e6
        if name == name.lstrip():  # imported by the program itself, not by another import
            total += cumulative
        packages.setdefault(top, 0.0)
        if name.strip() == top and packages[top] == 0.0:
            packages[top] = cumulative
    return Imports(sorted(loaded & set(HEAVY)), total, packages)


def describe_imports(found: Imports, limit: int = 5) -> str:
    """"1.02 s importing (sqlalchemy 0.41 s, pydantic 0.2 s, ...)": the figures a reader needs."""
    top = sorted(((s, p) for p, s in found.packages.items() if s >= 0.005), reverse=True)[:limit]
    return f"{found.total:.2f} s importing ({', '.join(f'{p} {s:.2f} s' for s, p in top) or 'nothing measurable'})"


STDLIB = sysconfig.get_paths()["stdlib"]


def _group(filename: str, function: str) -> str:
    if filename == "~":
        if "sqlite3" in function:
            return "sqlite (C, queries)"
        if "fsync" in function:
            return "fsync"
        if "select." in function or "selectors" in function:
            return "waiting on I/O (event loop)"
        if "lock' objects" in function or "_thread" in function:
            return "waiting on threads (locks)"
        if "marshal" in function or "_imp." in function or "builtins.exec" in function:
            return "import machinery"
        return "builtins (" + function.strip("<>").replace("built-in method ", "").split(" of ")[0] + ")"
    if filename.startswith("<frozen importlib") or filename.startswith("<frozen zipimport"):
        return "import machinery"
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/")[0].removesuffix(".py")
    archiver = str(REPO / "archiver") + "/"
    if filename.startswith(archiver):
        return "archiver." + filename[len(archiver):].split("/")[0].removesuffix(".py")
    if filename.startswith(STDLIB + "/"):
        return "stdlib " + filename[len(STDLIB) + 1:].split("/")[0].removesuffix(".py")
    return filename.rsplit("/", 1)[-1]


def profile(args: Sequence[str], env: Mapping[str, str], work: Path, python: str) -> list[tuple[str, float]]:
    """`archiver ARGS` under cProfile: (group, share of the main thread's time), biggest first."""
    out = work / "profile.out"
    out.unlink(missing_ok=True)
    measure([python, "-m", "cProfile", "-o", str(out), "-m", "archiver", *args], env=env, check=False, timeout=900)
    if not out.exists():
        return []
    stats = pstats.Stats(str(out)).stats  # type: ignore[attr-defined]
    groups: dict[str, float] = {}
    for (filename, _, function), (_, _, tottime, _, _) in stats.items():
        key = _group(filename, function)
        groups[key] = groups.get(key, 0.0) + tottime
    total = sum(groups.values()) or 1.0
    return sorted(((name, t / total) for name, t in groups.items()), key=lambda item: -item[1])


def describe_profile(groups: list[tuple[str, float]], seconds: float, limit: int = 8, per: int = 0,
                     unit: str = "s") -> str:
    """The biggest groups as shares of `seconds` (and per item when `per` is given)."""
    if not groups:
        return "(the profile could not be taken)"
    parts = []
    for name, share in groups[:limit]:
        value = share * seconds
        figure = f"{value / per * 1e6:.0f} µs/task" if per else f"{value:.2f} {unit}"
        parts.append(f"{name} {figure} ({share:.0%})")
    return ", ".join(parts)
