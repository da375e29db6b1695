"""The durable floor in archiver's own language and transfer library: Python threads on libcurl.

    python bench/floor_pycurl.py URLS_FILE OUT_DIR JOBS

JOBS threads share the URL list; each keeps one pycurl handle (a kept-alive connection) and, per
URL, writes the body to `<name>.part` while hashing it with sha256 in libcurl's write callback,
fsyncs it, renames it to its final name and, once every file is in, fsyncs the folder. That is
the durability `archiver sync` gives each file (complete, hashed, on disk before its final name
appears) with none of its other work: no poll, database, paths, checks or tags. run.py times it
beside aria2c and archiver, so the report shows what a Python program can reach on this machine.
Prints the bytes written.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from pathlib import Path
from typing import Iterator

import pycurl

BUFFER = 512 * 1024  # libcurl's receive buffer, as archiver.transport sets it


def _fetch_all(urls: Iterator[str], lock: threading.Lock, out: Path, sizes: list[int]) -> None:
    handle = pycurl.Curl()
    handle.setopt(pycurl.BUFFERSIZE, BUFFER)
    handle.setopt(pycurl.FAILONERROR, 1)
    try:
        while True:
            with lock:
                url = next(urls, None)
            if url is None:
                return
            name = url.rsplit("/", 1)[1]
            part = out / f"{name}.part"
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            digest = hashlib.sha256()
            written = 0

            def write(data: bytes) -> None:
                nonlocal written
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                digest.update(data)
                written += len(data)

            try:
                handle.setopt(pycurl.URL, url)
                handle.setopt(pycurl.WRITEFUNCTION, write)
                handle.perform()
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(part, out / name)
            digest.hexdigest()
            sizes.append(written)
    finally:
        handle.close()


def main(argv: list[str]) -> int:
    urls = iter(Path(argv[0]).read_text().split())
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    sizes: list[int] = []
    threads = [threading.Thread(target=_fetch_all, args=(urls, lock, out, sizes)) for _ in range(int(argv[2]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    folder = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    print(sum(sizes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
