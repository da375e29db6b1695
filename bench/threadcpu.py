"""`archiver ...` with its CPU time split by thread, for the download breakdown (Linux only).

    python bench/threadcpu.py ARCHIVER-ARGS...

A sampler thread reads each thread's user and system time from /proc every SAMPLE seconds and
names it after its Python thread: the event loop (MainThread), the worker threads asyncio hands
file work to (checks, tags, hashes, fsyncs, renames), and the libcurl transfer threads (bytes
from the socket into the `.part`). At exit one JSON line on stderr gives each group's seconds.
The sampler's own time is reported apart; a thread's last SAMPLE seconds before it ends are lost.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time

SAMPLE = 0.05
GROUPS = (("MainThread", "event loop"), ("archiver-media", "transfers"), ("asyncio", "file work"))
TICK = os.sysconf("SC_CLK_TCK")
seen: dict[str, tuple[str, float, float]] = {}  # thread id -> (group, user s, system s)


def _group(name: str) -> str:
    return next((label for prefix, label in GROUPS if name.startswith(prefix)), "other")


def _sample() -> None:
    while True:
        names = {str(t.native_id): t.name for t in threading.enumerate()}
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended since the listing
            name = names.get(tid)
            group = "sampler" if name == "threadcpu" else _group(name) if name else seen.get(tid, ("other",))[0]
            seen[tid] = (group, int(fields[11]) / TICK, int(fields[12]) / TICK)
        time.sleep(SAMPLE)


def _report() -> None:
    totals: dict[str, list[float]] = {}
    for group, user, system in seen.values():
        entry = totals.setdefault(group, [0.0, 0.0])
        entry[0] += user
        entry[1] += system
    print(json.dumps({"threadcpu": {g: {"user": round(u, 3), "sys": round(s, 3)} for g, (u, s) in totals.items()}}),
          file=sys.stderr)


def main(argv: list[str]) -> None:
    threading.Thread(target=_sample, daemon=True, name="threadcpu").start()
    atexit.register(_report)
    from archiver.cli import cli

    cli(argv, prog_name="archiver")


if __name__ == "__main__":
    main(sys.argv[1:])
