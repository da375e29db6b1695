"""The HTTP floor under `archiver sync`: the same URLs through httpx alone, nothing else.

    python bench/floor_httpx.py URLS_FILE OUT_DIR JOBS [httpx|curl]

Streams every URL with one `httpx.AsyncClient` (JOBS connections, as `archiver sync --jobs`
makes), hashing each body with sha256 and writing it to OUT_DIR; no polling, database, tagging or
fsync. `httpx` (the default) uses httpx's own transport, `curl` the libcurl transport archiver
uses for media (`archiver.transport`). run.py times both beside curl and archiver, so the report
can say how much of archiver's time is the HTTP layer and how much is archiver's own work.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from pathlib import Path

import httpx


async def _one(client: httpx.AsyncClient, url: str, out: Path, limit: asyncio.Semaphore) -> int:
    async with limit:
        digest = hashlib.sha256()
        size = 0
        with (out / url.rsplit("/", 1)[1]).open("wb") as fh:
            async with client.stream("GET", url) as response:
                response.raise_for_status()
                async for chunk in response.aiter_raw():
                    digest.update(chunk)
                    fh.write(chunk)
                    size += len(chunk)
        return size


async def _main(urls: list[str], out: Path, jobs: int, transport: str) -> int:
    limit = asyncio.Semaphore(jobs)
    limits = httpx.Limits(max_connections=jobs, max_keepalive_connections=jobs)
    options: dict[str, object] = {"limits": limits}
    if transport == "curl":
        from archiver.transport import CurlTransport

        options = {"transport": CurlTransport(jobs=jobs), "trust_env": False}
    async with httpx.AsyncClient(headers={"Accept-Encoding": "identity"}, **options) as client:  # type: ignore[arg-type]
        sizes = await asyncio.gather(*(_one(client, url, out, limit) for url in urls))
    return sum(sizes)


def main(argv: list[str]) -> int:
    urls = Path(argv[0]).read_text().split()
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    total = asyncio.run(_main(urls, out, int(argv[2]), argv[3] if len(argv) > 3 else "httpx"))
    print(total)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
