"""What the `archiver serve` tests share: a small synced library with real audio and covers, and
the server started as a user starts it (`python -m archiver serve --port 0`) in a subprocess."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from archiver.simulator import Simulator
from archiver.testkit import Lib

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = "<img src=x onerror=alert(1)>\x1b[31m"
LYRICS = "[Verse]\nAn albatross over the quiet sea\n[Chorus]\nHarbour lights, harbour lights\nCarry me home"


@dataclass
class Library:
    """The library and what was put in it, for the tests to compare against."""

    lib: Lib
    titles: dict[str, tuple[str, str]] = field(default_factory=dict)  # title -> (source, clip_id)
    failed_task: str = ""
    pending_task: str = ""

    @property
    def root(self) -> Path:
        return self.lib.root

    def clip(self, title: str) -> tuple[str, str]:
        return self.titles[title]

    def path(self, title: str, kind: str = "audio") -> Path:
        source, clip_id = self.titles[title]
        rows = self.lib.query("SELECT a.path FROM assets a JOIN clips c ON c.id = a.clip_pk "
                              "WHERE c.source = ? AND c.clip_id = ? AND a.kind = ?", source, clip_id, kind)
        return self.root / rows[0][0]


def build_library(sim: Simulator, where: Path, *, audio_bytes: int | None = None) -> Library:
    """Three sources, mp3 and m4a audio with covers, a hostile title, a failed and a pending task.

    `audio_bytes` pads the MP3s (longer songs: the browser tests seek in them).
    """
    lib = Lib.create(sim, where)
    plan = [
        ("ccapi-suno", dict(titles=["Albatross at Dawn", "Harbour Lights"], lyrics=LYRICS, audio_format="mp3",
                            audio_bytes=audio_bytes)),
        ("acedata", dict(titles=["Paper Moon", HOSTILE], lyrics="[Intro]\nPaper moon\n[Outro]\nGoodnight",
                         audio_format="m4a")),
        ("mountsea", dict(titles=["Glass River"], lyrics="Glass river, quiet and slow", audio_format="mp3",
                          audio_bytes=audio_bytes)),
    ]
    added: dict[str, list[str]] = {}
    for source, options in plan:
        added.setdefault(source, []).append(sim.add_task(source, clips=2, steps=0, **options))  # type: ignore[arg-type]
    failed = sim.add_task("acedata", outcome="failed", steps=0)
    added["acedata"].append(failed)
    for source, ids in added.items():
        result = lib.cli("add", source, *ids)
        assert result.exit_code == 0, result.output
    code, summary = lib.sync()
    assert code == 0, (summary, lib.outputs[-1])
    pending = "task_pending0000000000000000000001"
    assert lib.cli("add", "ccapi-producer", pending).exit_code == 0  # never polled: pending
    library = Library(lib, failed_task=failed, pending_task=pending)
    for row in lib.query("SELECT source, clip_id, title FROM clips"):
        library.titles[row["title"]] = (row["source"], row["clip_id"])
    return library


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return {**env, **extra}


@contextmanager
def serve(library: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """`archiver --library L serve --port 0 ARGS` in a subprocess; yields its base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "archiver", "--library", str(library), "serve", "--port", "0",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env or clean_env())
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("serving "), line + (proc.stderr.read() if proc.stderr else "")
        url = next(word for word in line.split() if word.startswith("http://"))
        deadline = time.monotonic() + 30
        while True:  # listening already (the socket is bound before the line); wait for the app
            try:
                status, _, _ = request(url, "/static/icon.svg", headers={"Authorization": "Bearer none"})
                if status in (200, 401):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "server did not answer"
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def request(base: str, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
            ) -> tuple[int, dict[str, str], bytes]:
    """One request with the path sent exactly as given (no normalisation of `..` or escapes)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        answer = conn.getresponse()
        body = answer.read()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, body
    finally:
        conn.close()
