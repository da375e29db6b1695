"""A throwaway PostgreSQL cluster for the tests and the benchmarks: `initdb` into a temporary
folder, a free port on 127.0.0.1, its socket in that folder, and the whole folder removed after.

PostgreSQL refuses to run as root, so when we are root the folder is handed to the `postgres`
user (Debian's package creates it) and the server binaries run as that user. Every test gets a
fresh database copied from a migrated template, which takes milliseconds.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

PASSWORD = "pg-test-secret-4711"  # the tests check that it never appears in any output


def binaries() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres; None when PostgreSQL is not installed."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    for folder in candidates:
        if Path(folder, "initdb").exists() and Path(folder, "postgres").exists():
            return Path(folder)
    found = shutil.which("initdb")
    if found and Path(found).resolve().with_name("postgres").exists():
        return Path(found).resolve().parent
    return None


def unavailable() -> str | None:
    """Why the PostgreSQL tests cannot run here, or None when they can."""
    if binaries() is None:
        return "PostgreSQL server binaries (initdb, postgres) are not installed; `apt-get install postgresql`"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run the server as"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'archiver[postgres]')"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """A running server; `database()` makes a fresh, migrated database and returns its URL."""

    def __init__(self) -> None:
        reason = unavailable()
        if reason:
            raise RuntimeError(reason)
        self.bin = binaries()
        assert self.bin is not None
        self.root = Path(tempfile.mkdtemp(prefix="archiver-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "archiver"
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self.root.chmod(0o700)
            self._prefix = ["runuser", "-u", "postgres", "--"]
        self._template: str | None = None

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._prefix, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              cwd=self.root, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip()[-500:]}")

    def start(self) -> "Cluster":
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD, encoding="utf-8")
        if self._prefix:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "--pwfile", str(pwfile),
                  "-A", "scram-sha-256", "-E", "UTF8", "--locale", "C.UTF-8", "--no-sync")
        pwfile.unlink()
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w",
                  "-o", options, "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(sql)

    def database(self) -> str:
        """The URL of a new database holding the current schema (a copy of a migrated template)."""
        if self._template is None:
            self._template = "archiver_template"
            self._admin(f"CREATE DATABASE {self._template}")
            from ..store import Store

            Store(self.url(self._template)).close()
        name = f"t_{uuid.uuid4().hex[:16]}"
        for attempt in range(50):  # the template must have no other session while it is copied
            try:
                self._admin(f"CREATE DATABASE {name} TEMPLATE {self._template}")
                break
            except Exception:
                if attempt == 49:
                    raise
                time.sleep(0.1)
        return self.url(name)

    def empty_database(self) -> str:
        """The URL of a new database with no schema at all (for the migration tests)."""
        name = f"e_{uuid.uuid4().hex[:16]}"
        self._admin(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except (RuntimeError, OSError):
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Cluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def cluster() -> Iterator[Cluster]:
    """A started cluster for a `with`-less fixture: yields it, stops and removes it afterwards."""
    with Cluster() as started:
        yield started
