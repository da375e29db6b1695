"""Plumbing for the benchmarks: timing child processes, an nginx on loopback, machine facts.

Every measured command runs as its own child process: wall time from start to exit, CPU time
from `os.wait4`, and its own peak RSS from /usr/bin/time (see `measure`), never the runner's or
another child's. Servers bind 127.0.0.1 only and are always stopped, even when a measurement fails.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Sample:
    """One finished child process: its wall time, CPU time, peak RSS and output."""

    wall: float  # seconds
    user: float  # CPU seconds in user mode
    sys: float  # CPU seconds in the kernel
    maxrss_kib: int  # peak resident set size
    returncode: int
    stdout: str
    stderr: str

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    @property
    def maxrss_mib(self) -> float:
        return self.maxrss_kib / 1024


class CommandFailed(RuntimeError):
    """A measured command exited non-zero: its figures would mean nothing."""


# Peak RSS needs a small process in between. Linux carries the RSS high-water mark of the address
# space a process had before exec into its ru_maxrss, and subprocess starts children with vfork,
# i.e. in the runner's own (big) address space: measured directly, every command would seem to
# peak at the runner's size. /usr/bin/time (or this trampoline) forks the command from a small
# process and reports the command's own figure.
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
TRAMPOLINE = """
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status) % 256)
"""


def measure(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 600.0, check: bool = True) -> Sample:
    """Run `cmd` to completion: wall time, CPU time (wait4) and the command's own peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        wrapped = ([TIME, "-f", "%M", "-o", rss.name, *cmd] if TIME
                   else [sys.executable, "-c", TRAMPOLINE, rss.name, *cmd])
        start = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                env=dict(env) if env is not None else child_env(), cwd=cwd,
                                start_new_session=True)
        timer = threading.Timer(timeout, _kill_group, args=(proc.pid,))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # CPU of the wrapper and the command it reaped
        except BaseException:  # Ctrl-C: its own session would not get the signal, so end it here
            _kill_group(proc.pid)
            os.waitpid(proc.pid, 0)
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4 already
        out.seek(0)
        err.seek(0)
        rss.seek(0)
        lines = rss.read().strip().splitlines()  # time -o puts "Command exited with..." first
        maxrss = int(lines[-1]) if lines and lines[-1].strip().isdigit() else 0
        sample = Sample(wall, usage.ru_utime, usage.ru_stime, maxrss, proc.returncode,
                        out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"))
    if check and sample.returncode != 0:
        raise CommandFailed(f"{' '.join(cmd[:4])}... exited {sample.returncode} after {wall:.1f} s:\n"
                            f"{sample.stderr[-2000:] or sample.stdout[-2000:]}")
    return sample


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values (a row then shows that something did not run)."""
    return statistics.median(values) if values else float("nan")


def free_port() -> int:
    """A port nobody listens on right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Return once a server accepts connections on the port; a server that never does is an error."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {LOOPBACK}:{port} after {timeout:.0f} s") from None
            time.sleep(0.05)


def find_nginx() -> str | None:
    """The OS package's nginx binary, if installed."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


NGINX_CONF = """\
# generated by bench/harness.py: static files on loopback, as fast as nginx goes
worker_processes 1;
daemon off;
master_process on;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 100000;
    types {{ audio/mpeg mp3; image/jpeg jpg; image/png png; }}
    default_type application/octet-stream;
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    server {{
        listen {host}:{port};
        root {root};
    }}
}}
"""


class Nginx:
    """nginx serving `root` on 127.0.0.1 with a generated config (sendfile, keep-alive, no log)."""

    def __init__(self, binary: str, root: Path, work: Path) -> None:
        self.binary = binary
        self.root = root
        self.work = work
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None  # the master; it stops its worker

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def __enter__(self) -> "Nginx":
        self.work.mkdir(parents=True, exist_ok=True)
        _world_readable(self.root, self.work.parent)  # workers run as nobody when the runner is root
        for attempt in range(3):
            self.port = free_port()
            conf = self.work / "nginx.conf"
            conf.write_text(NGINX_CONF.format(work=self.work, host=LOOPBACK, port=self.port, root=self.root))
            self._proc = subprocess.Popen([self.binary, "-p", str(self.work), "-c", str(conf)],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)  # errors go to error.log
            try:
                wait_for_port(self.port, timeout=10)
                return self
            except RuntimeError:
                self._stop()
                if attempt == 2:
                    log = (self.work / "error.log")
                    raise RuntimeError("nginx did not start: "
                                       + (log.read_text()[-1000:] if log.exists() else "no log")) from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)  # fast shutdown of master and worker
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _world_readable(root: Path, top: Path) -> None:
    """Let nginx's workers read `root`: chmod a+rx it and its parents up to `top` (inclusive)."""
    for path in [root, *root.parents]:
        with contextlib.suppress(OSError):
            path.chmod(path.stat().st_mode | 0o755)
        if path == top or path == path.parent:
            break


def archiver_command() -> list[str]:
    """The installed `archiver` script next to this Python (the venv), else `python -m archiver`."""
    script = Path(sys.executable).parent / "archiver"
    return [str(script)] if script.exists() else [sys.executable, "-m", "archiver"]


# Interpreter settings that change how fast any Python program runs; a user's shell normally
# has none of them (this runner's sandbox had PYTHONUNBUFFERED and PYTHONDONTWRITEBYTECODE).
PYTHON_RUNTIME_VARS = ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONDEVMODE", "PYTHONMALLOC",
                       "PYTHONMALLOCSTATS", "PYTHONTRACEMALLOC", "PYTHONPROFILEIMPORTTIME", "PYTHONASYNCIODEBUG",
                       "PYTHONVERBOSE", "PYTHONINSPECT", "PYTHONWARNINGS", "PYTHONPYCACHEPREFIX")


def dropped_python_vars() -> list[str]:
    """The interpreter settings found in this environment that children run without."""
    return [f"{name}={os.environ[name]}" for name in PYTHON_RUNTIME_VARS if name in os.environ]


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without ARCHIVER_* and PYTHON* runtime settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ARCHIVER_") and k not in PYTHON_RUNTIME_VARS}
    env.update(extra or {})
    return env


def _first_line(cmd: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "absent"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "absent"


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, kernel and the file system the benchmark writes to."""
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    return {"CPU": model, "cores": str(os.cpu_count() or "?"), "RAM": ram,
            "kernel": f"{platform.system()} {platform.release()}"}


def filesystem_of(path: Path) -> str:
    """The mount holding `path`, e.g. "ext4 on /dev/vda (mounted at /)": fsync costs depend on it."""
    found, best = "unknown", ""
    target = str(path.resolve())
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, kind = line.split()[:3]
            inside = target == mount or target.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best):
                best, found = mount, f"{kind} on {device} (mounted at {mount})"
    return found


def versions(nginx: str | None) -> dict[str, str]:
    """Versions of everything whose speed shows in the figures."""
    import sqlite3

    def dist(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "absent"

    nginx_version = _first_line([nginx, "-v"]).removeprefix("nginx version: nginx/") if nginx else "absent"
    return {
        "archiver": _archiver_version(),
        "python": platform.python_version(),
        "nginx": nginx_version,
        "curl": (_first_line(["curl", "--version"]).split() + ["absent", "absent"])[1],
        "sqlite3 (CLI)": _first_line(["sqlite3", "--version"]).split(" ")[0],
        "sqlite (Python's)": sqlite3.sqlite_version,
        "httpx / SQLAlchemy / mutagen": f"{dist('httpx')} / {dist('SQLAlchemy')} / {dist('mutagen')}",
        "pycurl (libcurl)": _libcurl(dist("pycurl")),
    }


def _archiver_version() -> str:
    """The measured `archiver`: its version, the checkout's revision and how it is installed (an
    editable install loads a path finder into every interpreter of the venv, ~0.03 s a start, that
    the README's `pip install .` does not)."""
    dist = _installed()
    if dist is None:
        return "absent" + _git_revision()
    shown = dist.version + _git_revision()
    try:
        editable = bool(json.loads(dist.read_text("direct_url.json") or "{}").get("dir_info", {}).get("editable"))
    except (ValueError, AttributeError):
        return shown
    if editable:
        return shown + ", editable install (pip install -e)"
    return shown + ", installed with pip install ." + ("" if _install_matches(dist) else
                                                       " **from other sources than this checkout: reinstall it**")


def _installed() -> importlib.metadata.Distribution | None:
    """The venv's archiver, not the metadata a build may have left in the checkout (the cwd)."""
    elsewhere = [p for p in sys.path if p and Path(p).resolve() != REPO]
    return next(iter(importlib.metadata.distributions(name="archiver", path=elsewhere)), None)


def _install_matches(dist: importlib.metadata.Distribution) -> bool:
    """The installed package's modules are the checkout's (a stale install measures other code)."""
    files = dist.files or []
    installed = {str(f): f.locate() for f in files if str(f).startswith("archiver/") and str(f).endswith(".py")}
    ours = {str(p.relative_to(REPO)): p for p in (REPO / "archiver").rglob("*.py")}
    return installed.keys() == ours.keys() and all(
        Path(str(installed[name])).read_bytes() == path.read_bytes() for name, path in ours.items())


def _libcurl(pycurl_version: str) -> str:
    try:
        import pycurl
    except ImportError:
        return "absent"
    found = [part for part in pycurl.version.split() if part.startswith("libcurl/")]
    return f"{pycurl_version} ({found[0].removeprefix('libcurl/') if found else '?'})"


def _git_revision() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":(exclude)docs/performance.md", ":(exclude)docs/reliability.md"],
                               capture_output=True, text=True, timeout=5).stdout.strip()  # not the reports
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return f" (git {rev}{', with uncommitted changes' if dirty else ''})" if rev else ""


@contextlib.contextmanager
def workspace(keep: bool, parent: str | None = None) -> Iterator[Path]:
    """A temporary directory for everything the benchmark writes; removed unless `keep`."""
    path = Path(tempfile.mkdtemp(prefix="archiver-bench-", dir=parent))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)
