"""`archiver serve` on the 20,000-clip library: how long each kind of page takes to arrive.

    python -m bench.serve                  # builds the library in a temporary folder (~30 s)
    python -m bench.serve --library DIR    # or reuses one (bench.fixtures.build_library made)

A real server (`python -m archiver serve --port 0`) answers real HTTP requests; each figure is the
median of the wall times of several requests from first byte sent to last byte read.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from .fixtures import build_library

PAGES = {
    "library, first page": "/",
    "library, page 300 (the end)": "/?page=300",
    "library, by title, page 200": "/?sort=title&page=200",
    "query `rain`": "/?q=rain",
    "filters: source + year": "/?source=acedata&year=2025",
    "filter: duration, by title": "/?duration=60..180&sort=title",
    "full-text search `rain`": "/?mode=text&q=rain",
    "full-text search, page 50": "/?mode=text&q=rain&page=50",
    "clip page": None,
    "audio, a 64 KiB range": None,
    "stats": "/stats",
    "tasks": "/tasks",
    "playlist of all 20,000 (M3U)": "/playlist.m3u8",
}


def timed(base: str, path: str, headers: dict[str, str] | None = None, runs: int = 7) -> tuple[float, int]:
    parts = urlsplit(base)
    times, size = [], 0
    for _ in range(runs):
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        start = time.perf_counter()
        conn.request("GET", path, headers=headers or {})
        answer = conn.getresponse()
        body = answer.read()
        times.append(time.perf_counter() - start)
        conn.close()
        assert answer.status in (200, 206), (path, answer.status)
        size = len(body)
    return statistics.median(times), size


def run(library: Path) -> list[tuple[str, float, int]]:
    server = subprocess.Popen([sys.executable, "-m", "archiver", "--library", str(library), "serve", "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        base = next(w for w in server.stdout.readline().split() if w.startswith("http://"))
        home = http.client.HTTPConnection(urlsplit(base).hostname, urlsplit(base).port, timeout=60)
        home.request("GET", "/?page=150")
        html = home.getresponse().read().decode()
        clip = html.split('href="/clip/', 1)[1].split('"', 1)[0]
        results = []
        for name, path in PAGES.items():
            headers = None
            if name == "clip page":
                path = f"/clip/{clip}"
            elif path is None:
                path, headers = f"/audio/{clip}", {"Range": "bytes=0-65535"}
            seconds, size = timed(base, path, headers, runs=3 if "playlist" in name else 7)
            results.append((name, seconds, size))
        return results
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, help="an existing benchmark library (default: build one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="archiver-serve-bench-") as tmp:
        library = args.library or build_library(Path(tmp) / "library", 20_000).root
        print("| page | median | size |\n|---|---|---|")
        for name, seconds, size in run(library):
            print(f"| {name} | {seconds * 1000:.0f} ms | {size / 1024:.0f} KiB |")


if __name__ == "__main__":
    main()
