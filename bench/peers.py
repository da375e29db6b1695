"""The downloaders a user would pick instead of archiver, installed by the bench itself.

aria2 and nginx come from Debian (`apt-get install -y`, only when missing and running as root),
gallery-dl and yt-dlp from PyPI into a venv of the bench's own, kept in a cache folder and
reused by later runs. A peer that cannot be installed is skipped with the reason, which the
report prints. Each peer's output is counted afterwards, so no tool wins by failing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

PYPI_PEERS = ("gallery-dl", "yt-dlp")
DEBIAN_FLAGS = ("-y", "-q", "--no-install-recommends")


@dataclass
class Peers:
    """Where each peer's binary is, or why it is missing."""

    binaries: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # peer -> why it was skipped
    versions: dict[str, str] = field(default_factory=dict)


def default_cache() -> Path:
    """A folder that outlives one run, so the peers' venv is built once per machine."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "archiver-bench"


def debian_tool(binary: str, package: str, log: Callable[[str], None]) -> tuple[str | None, str]:
    """The path of `binary`, installing `package` with apt-get when missing and root; else why not."""
    found = shutil.which(binary) or next((p for p in (f"/usr/sbin/{binary}", f"/usr/bin/{binary}")
                                          if os.access(p, os.X_OK)), None)
    if found:
        return found, ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, f"`{binary}` is not installed and the bench is not root with apt-get to install `{package}`"
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    log(f"installing {package} from Debian (apt-get install)")
    for update_first in (False, True):
        if update_first:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600, check=False)
        done = subprocess.run(["apt-get", "install", *DEBIAN_FLAGS, package], env=env, capture_output=True,
                              text=True, timeout=900, check=False)
        found = shutil.which(binary) or (f"/usr/sbin/{binary}" if os.access(f"/usr/sbin/{binary}", os.X_OK) else None)
        if done.returncode == 0 and found:
            return found, ""
    return None, f"`apt-get install {package}` failed: {(done.stderr or done.stdout).strip()[-300:]}"


def pypi_tools(cache: Path, log: Callable[[str], None]) -> tuple[dict[str, str], dict[str, str]]:
    """gallery-dl and yt-dlp in the bench's venv under `cache`: (name -> binary, name -> why missing)."""
    venv = cache / "peers-venv"
    bin_dir = venv / "bin"
    wanted = {name: bin_dir / name for name in PYPI_PEERS}
    if not all(path.exists() for path in wanted.values()):
        log(f"installing {', '.join(PYPI_PEERS)} from PyPI into {venv}")
        try:
            if not (bin_dir / "python").exists():
                subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True,
                               capture_output=True, text=True, timeout=300)
            subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            *PYPI_PEERS], check=True, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", None) or str(exc)
            why = f"`pip install {' '.join(PYPI_PEERS)}` into the bench's venv failed: {str(detail).strip()[-300:]}"
            return {}, {name: why for name, path in wanted.items() if not path.exists()}
    found = {name: str(path) for name, path in wanted.items() if path.exists()}
    return found, {name: "not installed by pip" for name in wanted if name not in found}


def install(cache: Path, log: Callable[[str], None]) -> Peers:
    """Every peer of item 1: aria2c from Debian, gallery-dl and yt-dlp from PyPI."""
    peers = Peers()
    aria2c, why = debian_tool("aria2c", "aria2", log)
    if aria2c:
        peers.binaries["aria2c"] = aria2c
    else:
        peers.missing["aria2c"] = why
    found, missing = pypi_tools(cache, log)
    peers.binaries.update(found)
    peers.missing.update(missing)
    for name, binary in peers.binaries.items():
        peers.versions[name] = _version(binary)
    return peers


def _version(binary: str) -> str:
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "?"
    words = (done.stdout or done.stderr).strip().splitlines()[0].split() if (done.stdout or done.stderr).strip() else []
    return words[-1] if words else "?"


def command(name: str, binary: str, urls: Path, out: Path, jobs: int) -> list[str]:
    """The command line a user would type to fetch every URL in `urls` into `out`."""
    if name == "aria2c":  # one connection per file, N files at a time, as archiver and curl do
        return [binary, "-j", str(jobs), "-x", "1", "-d", str(out), "-i", str(urls), "--quiet=true",
                "--allow-overwrite=true", "--auto-file-renaming=false", "--file-allocation=none",
                "--check-certificate=false", "--max-tries=1"]
    if name == "gallery-dl":  # sequential: it has no parallel-downloads option
        return [binary, "--config-ignore", "--quiet", "-D", str(out), "-i", str(urls)]
    if name == "yt-dlp":  # sequential: -N only splits fragmented (HLS/DASH) downloads
        return [binary, "--ignore-config", "--quiet", "--no-warnings", "--no-progress", "-P", str(out),
                "-a", str(urls)]
    raise ValueError(name)


SEQUENTIAL = frozenset({"gallery-dl", "yt-dlp"})


def check_output(name: str, out: Path, files: int, total_bytes: int) -> None:
    """Every file there and every byte: a peer that skipped or truncated files measured nothing."""
    found = [p for p in out.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in found)
    if len(found) != files or size != total_bytes:
        leftovers = [p.name for p in found if p.suffix in (".part", ".aria2", ".ytdl")][:3]
        raise RuntimeError(f"{name} left {len(found)} files and {size:,} bytes, expected {files} and "
                           f"{total_bytes:,}" + (f" (unfinished: {', '.join(leftovers)})" if leftovers else ""))
