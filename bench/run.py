"""Benchmark archiver against plain tools on this machine and write docs/performance.md.

    .venv/bin/python -m bench.run            # the full run (under 15 min on 2 cores), writes the doc
    .venv/bin/python -m bench.run --quick    # a smoke run of a few minutes, prints the doc instead
    .venv/bin/python -m bench.run --only download,idle --out /tmp/perf.md

Items: download (vs curl, curl + sync -f, aria2c, gallery-dl, yt-dlp; readers during a sync),
polling (requests and CPU per task), idle (20,000-clip library vs empty and vs python -c pass),
memory (1 GiB file vs 3 MB), startup (--help/--version vs python -c pass; what every read command
imports), browse (ls/search vs sqlite3 running their SQL, show vs python -c pass), fleet (1, 2 and 4
workers on one PostgreSQL catalog; also `python -m bench.fleet`). The peers are
installed on first use: aria2 (and nginx) with apt-get when missing and root, gallery-dl and
yt-dlp with pip into a venv kept under --cache. Everything runs on 127.0.0.1 inside one temporary
directory that is removed at the end, servers included, whatever happens.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

from bench import download, fleet, items, peers, readpath
from bench.harness import (REPO, dropped_python_vars, filesystem_of, find_nginx, machine, measure, versions,
                           workspace)
from bench.report import Section, render

ITEMS: dict[str, Callable[[items.Bench], Section]] = {
    "download": download.download,
    "polling": items.polling,
    "idle": items.idle,
    "memory": items.memory,
    "startup": readpath.startup,
    "browse": readpath.browse,
    "fleet": lambda bench: fleet.run(bench.plan.quick, bench.log),
}

WARM_UP = ("import archiver.cli, archiver.sync, archiver.archive, archiver.library, "
           "archiver.simulator, archiver.rebuild, archiver.verify, bench.floor_httpx")

PROFILED = """
Tools: py-spy (`record --gil`, raw stacks summed per function), pyinstrument, `strace -c`, and
small timers around the archive/store functions, on the same setups as items 1–3 and 6 (nginx +
simulator, 10,000 polled tasks, the 20,000-clip library). "Before" figures are from those
sessions on this machine, before each change; "after" ones are the tables above.

Fixed in product code:

1. **Every new song was tagged twice** (`archive.py`). The cover is fetched before the audio and
   flagged "cover changed", which then re-tagged the audio that had just been tagged *with* that
   cover: a full copy, a second mutagen rewrite, sha256 and fsync per song. Only audio tagged
   before its cover arrived is re-tagged now. Largest single win of item 1.
2. **Audio reached the disk twice and its tags never were fsynced** (`download.py`, `archive.py`).
   The body was fsynced when the transfer ended; tagging then rewrote the file (mutagen moves the
   audio when the tag grows) and those bytes were renamed into place unsynced. One fsync now, after
   the last write, just before the rename (`download.sync_file`).
3. **Audio was hashed twice** (`download.py` `Transfer.hash`, `archive.py`). The sha256 of the
   streamed audio was discarded (tagging changes the file, which is hashed again). Audio tagged in
   place is no longer hashed while streaming (an MP3 is, behind its prelude: item 14).
4. **The transfer loop copied each byte three times** (`download.py`): `aiter_raw(256 KiB)`
   re-chunked (a copy), the bytearray buffer was another and `bytes(buffer)` a third. Chunks are
   now kept as received and joined once per 1 MiB write (a quarter of the thread hops).
   Items 1–4 together, 200 clips at N=4: 17.0 s and 16.0 s CPU before, see item 1 after.
5. **Recording a file** (`store.py` `asset_done`): an ORM load + flush per file, 1.4 ms; now one
   prepared UPDATE, 0.3 ms.
6. **A first poll flushed once per new row** (`store.py` `apply`): a flush after each new task and
   each new clip (~1.5 ms each). Now one flush for the new tasks and one for the new clips
   (batched INSERTs): storing 2,000 tasks with 4,000 new clips took 11.6 s before, 6.1 s after.
7. **Scheduling reloaded every polled task as an ORM object** (`store.py` `schedule`) right after
   `apply` had: now four columns are read and one driver-level executemany writes them back,
   results identical row for row: 10,000 tasks 1.65 s before, 0.4 s after.
8. **The idle walk built three pathlib objects per file** (`archive.py` `walk_library`): relative
   paths are now built from the entry names; 40,000 files 0.91 s before, 0.10 s after. This is
   one `scandir` per folder and the check one query, with no per-file stat or per-row query.
9. **`ls --format json` made a write(2) per JSON token** (`render.py`) when stdout is unbuffered
   (`PYTHONUNBUFFERED=1`, as in this sandbox and many container images): 1.44 million syscalls
   for 20,000 clips, 4.5 s. It now writes 64 KiB at a time: 1.9 s, same bytes, same memory.

10. **httpx's own transport was most of item 1** (`download.py`, new `transport.py`): on this VM
   it moved ~110–250 MB/s, CPU-bound in h11's per-read parsing and buffer copies and anyio's
   per-read machinery, where `curl` moves 400–700 MB/s from the same nginx. Media requests keep
   httpx's response and exception types (streaming, redirects checked hop by hop, timeouts; see
   item 15 for the client) but run on libcurl (pycurl): one worker thread per transfer, the
   body handed to the event loop in 1 MiB chunks, at most 4 MiB buffered per transfer. Same
   200-clip setup, N=4, `archiver sync` timed alone back to back in one session: 10.4 s wall
   and 10.9 s CPU before, 6.4–6.7 s and ~7 s after (item 1's two `httpx` rows show the floor
   each transport sets).
11. **The idle run still listed 40,000 files** (new `dirstamp.py`): 0.154 s, 6.2× `python -c
   pass` and 1.88× an empty library. An idle run that checked every file now leaves a stamp of
   each folder's inode and modification/change times and a checksum of the recorded paths; the
   next one stats 15 folders and lists the root instead of walking (any change, or a folder
   touched within 2 s, falls back to the walk). See item 3 for the figures after.
12. **`ls --format json` encoded 20,000 rows in Python** (`library.py` `clips_json`): fetching
   the rows as tuples, building dicts and `json.dumps` cost more than the `sqlite3` shell's whole
   run (0.48 s vs 0.21 s). SQLite now builds each object with `json_object` (the duration through
   Python's float spelling, odd time spellings through the same helper as before) and the
   command joins the texts; a property test checks the objects equal the Python rows. Listings
   are one object per line, the `sqlite3 -json` layout. See item 6.
13. **A song went to a worker thread four times after its transfer** (new `finishing.py`):
   cover read, tagging, sha256 and fsync were separate executor hand-offs, and each tagging
   queried its task's album tracks through the ORM; now one call does the four steps and the
   tracks of every task in the run are read in one query. CPU of the 200-clip sync (N=4) in
   back-to-back runs on this machine: 5.7 → 5.5 s user+sys (medians of 3), within the noise; kept
   for the fewer moving parts on the event loop.

14. **Every MP3 was rewritten to be tagged, then read again to be hashed** (`finishing.py`,
   `tagging.id3_prelude`, `download._PartSink`): mutagen moves the whole audio when our tag is
   bigger than the source's, and the tagged file was then read once more for its sha256. Now the
   transfer's thread builds the file's tags from the source's own ID3 tag as soon as it has
   arrived (the same frames tagging in place gives; a property test holds the two to each other)
   and hashes the finished file as the audio streams; finishing writes the tags, has the kernel
   copy the audio after them (`copy_file_range`) and fsyncs. The `.part` keeps the body as sent,
   so resuming is unchanged. On the 200-clip setup, N=4, alternating runs: download phase 3.0 s
   → 2.4 s; `farm-bench` A/B of the whole sync 0.93× wall.
15. **httpx's client cost more of the event loop than the transfer** (`transport.MediaClient`):
   building each request, its hooks and redirect loop, URL parsing (`ipaddress` for every
   literal host) were ~0.4 s of the main thread's CPU for 400 files. Media requests now go
   straight to the libcurl transport; `MediaClient` follows redirects itself, each target joined
   and checked like the first URL (a malformed Location now fails its file for good rather than
   being retried). A/B against the commit before, alternating: 0.90× wall, 0.91× CPU.
16. **`search` built a snippet for every match** (`library._fts_best`): SQLite computes each
   result column for every row it sorts, so ranking 9,132 matches of "rain" built 9,132 snippets
   to show 50. It now ranks by bm25 alone (reading `clips` only when a filter needs it), then
   reads the page's rows and their snippets: 0.107 s → 0.075 s at 20,000 clips. The `sqlite3`
   shell replays the new SQL too, so item 6's ratio for `search` grows (its reference got
   faster by more than archiver's fixed start-up).

17. **Every string of every polled body went through the redactor** (`providers/base.py`,
   `redact.py`): a body with any backslash (lyrics are full of `\n`) was walked string by string
   for the token, though the token's pattern already finds it in the undecoded text in every
   spelling JSON allows but two (short escapes such as `\n`, and surrogate pairs); the walk now
   runs only when the text holds the token or the token holds such a character. About 10–30 µs
   of CPU per polled task, on 10,000 tasks in alternating runs.
18. **Every path component ran every sanitizing rule** (`paths.sanitize_component`): an everyday
   title (plain ASCII, single spaces, no dot or space at the ends) is returned as it is; a
   property test holds the shortcut to what the rules (ours and pathvalidate's) give. Rendering a
   clip's path: 0.19 ms → 0.05 ms, on the event loop.
19. **Tagging an MP3 still copied its audio** (`fs.graft`, `finishing.finish_prelude`): item 14
   wrote the tags into a new file and had the kernel copy the audio behind them, 600 MB of page
   cache copied per run. The prelude is now padded to the size of the source's tag plus whole
   file-system blocks, and once the download is complete the file system inserts those blocks in
   front of the audio (`fallocate` INSERT_RANGE, ext4 and XFS) and the tags are written over them:
   the downloaded file itself becomes the tagged one, nothing copied (a file system that cannot
   insert keeps item 14's copy). Worker threads' CPU for file work 1.38 → 0.85 s; A/B of the whole
   sync, alternating: 0.94× wall, 0.89× CPU.
20. **Every piece libcurl delivered was written and hashed on its own** (`download._PartSink`):
   loopback hands a transfer ~16 KiB at a time (36,805 pieces for 400 files), and each `write`
   and sha256 update let go of the GIL and queued to take it back behind the event loop and the
   other transfers. The sink now writes and hashes 256 KiB at a time (what it holds is written
   when the transfer ends for any reason, so a resume still starts after every byte that came):
   transfer threads' CPU 2.4 → 1.75 s; A/B 0.87× wall, 0.88× CPU.
21. **Every command ended with a quarter of a second of garbage collection** (`cli.main`): at
   exit the interpreter's last collections walked every object SQLAlchemy, pydantic and httpx had
   made (0.27–0.34 s between a sync printing its result and its process ending). What is alive
   when a command ends is now frozen out of them (`gc.freeze`): 0.02–0.03 s.
22. **Every piece of a body still needed the GIL** (new `curl_file.py`, `transport.py`): pycurl
   hands each piece (16 KiB at most) to a Python callback, which waited for the GIL behind the
   event loop and the other threads (item 20 made each wait cheaper, not rarer). Media bodies now
   go through libcurl's own easy interface loaded with ctypes (the same library pycurl runs on),
   whose write function is stdio's `fwrite` into the `.part`: no Python runs per piece. Python
   still runs for the head's lines and in libcurl's progress callback (a few times a second: the
   timeouts, minimum speed, size limit and cancelling live there), and the calls that return at
   once keep the GIL. The sink holds the body to max_file_size and its first bytes to the
   expected kind as it grows, and hashes it from the file once it is complete. Where ctypes
   cannot drive libcurl (not Linux), pycurl's write callback does the work as before. Python calls in a transfer's thread for a 24 MiB body: at least three per piece
   before (over 4,600), about 200 now (a test holds them under one per piece). A/B of the
   download phase, alternating: 0.92×.
23. **Two more hand-offs per clip** (`download.Transfer.durable`, `.measure`, `.offset`): a
   cover's fsync and an audio file's length check now run in its transfer's thread once the body
   is complete, and what a `.part` holds from an earlier run is looked up in the worker call that
   locates the file (each hand-off to a worker thread and back cost ~1 ms of waiting for a thread
   and for the event loop, 9 per clip before, 6 now). A/B: 0.96× and 0.93× (noisy).
24. **Tagging an MP3 waited for its audio to reach the disk** (`fs.start_writeback`): fallocate's
   insert (item 19) first writes the file's dirty pages back, ~2 ms for 2.9 MB alone and 7 ms a
   file during a sync. The disk now starts writing a body back (`sync_file_range`, without
   waiting) as soon as it is complete, while it is hashed, measured and its tags built:
   `finish_prelude` 7.0 → 4.7 ms a file; A/B 0.95×.
25. **The collector walked the libraries while they loaded** (`cli.context.loading_libraries`):
   SQLAlchemy, SQLModel/pydantic and httpx leave ~120,000 objects alive that last as long as the
   process, and the collections their import triggered walked them again and again. Collection
   now pauses while a command imports them, and what they made is then frozen out of the
   collector's generations. A 400-file sync: ~160 collections fewer (two of them full), GC time
   190 → 40 ms, all of it before the downloads start (the download phase's own collections,
   ~27 ms, are the same); whole sync A/B 0.99× (24 pairs).
26. **Every provider client loaded the CA bundle on the main thread** (new `tls.py`): httpx
   builds a TLS context for each client it makes, ~55–63 ms here, before the first poll. One
   context now serves every provider client of a run, and `sync` starts building it in a thread
   before it imports its libraries: OpenSSL loads the bundle without holding the GIL (a Python
   busy loop of 0.245 s took 0.236 s with the context built beside it), so it costs the main
   thread nothing. Same trust as httpx's default (`SSL_CERT_FILE`, `SSL_CERT_DIR`, else
   certifi's bundle); a test polls an https server on loopback with and without its certificate.
27. **httpx imported its command-line client** (`archiver/_httpx.py`): httpx loads click, rich and
   pygments' lexers for its own CLI whenever they are installed, which they are beside archiver.
   That import is made to fail while httpx loads (httpx then keeps a stub), so a sync no longer
   loads rich or pygments: 2.29 G → 2.11 G instructions (`valgrind --tool=callgrind`, which counts
   the same on a busy machine) to import what a sync imports, about 8%.
28. **A poll's body was searched for the token character by character** (`redact.holds_secret`):
   the escape-aware pattern scanned every body (~10 µs a task). A body without a percent escape
   or a `\\u` (or any backslash, for a token holding `"`, `\\` or `/`) can only hold the token as
   written, which `str.find` looks for: a 50-task body 500 → 27 µs; a lone `%` (CCAPI's
   `"progress": "1%"`) is no escape. A property test holds the shortcut to the pattern for tokens
   spelled every way JSON and URLs allow. With it, per polled task: `raw_json` through one encoder
   built once (`json.dumps` with options builds one per call: 9.0 → 3.6 µs a payload), the
   normalizers' `isinstance(..., Mapping)` through `collections.abc` (typing's alias took a
   slower path), and a batch's times spelled once each (most are its one `now`). The regular
   expression engine had been ~7% of the instructions each polled task added (callgrind's
   function totals, 1,000 against 10,000 tasks).
29. **Every non-idle sync listed the whole library to see that its disk is mounted**
   (`mounted.check_present`): it read every recorded path and walked every folder before
   polling, then the download phase did both again. It now counts the recorded files and stops
   at the first file on disk (a test holds the early stop to the full walk on planted trees);
   the download phase's own walk is unchanged.
30. **Every poll request searched the import path four times** (`sniffio`, a new dependency):
   httpcore asks sniffio which event loop runs, on every request; anyio no longer brings sniffio
   along, so each ask was a failed import that searched every path entry again. With sniffio
   installed: ~0.8 ms less CPU a 50-task request (alternating runs of 100 requests: 2.6–3.4 →
   1.8–2.5 ms user+system); a test counts the path searches of five polls (none).
31. **Every answered task's row was written twice per poll** (`upsert.Batch.schedule`,
   `Store.record_polls`): storing the answer rewrote the task's row, raw JSON and all, and
   rescheduling it read four of its columns back and rewrote the whole row again (SQLite rewrites
   a row for any change), in a second transaction. The batch now holds the answer's values back
   and writes them with the schedule in one UPDATE, taking the four columns from the rows it read
   to compare; a lone worker records a poll in one transaction, as a fleet worker did. A property
   test holds the result to `apply` then `schedule`; another counts one row write a task. The
   10,000-task pass: 8.72 → 8.16 G instructions (callgrind), 623 → 568 k instructions a task
   added (1,000 against 10,000 tasks); alternating runs, CPU median 3.57 → 3.23 s.
32. **The download side loaded before the first poll** (new `mounted.py`): `sync` imported
   `archive` (pycurl, mutagen, tagging: ~0.1 s here) for its mounted-disk check before polling.
   The check has its own module; `archive` loads in a thread while the first poll waits on the
   network, and a `sync --no-download` does not load it (a test names the importing thread).
   Whole sync A/B on item 1's set, 10 alternating pairs on a noisy hour: median 0.96×.
33. **`raw_json` through the standard JSON encoder** (`models.dumps`, orjson, a new
   dependency): 8–15 µs a typical task record, once per polled task and clip; orjson takes
   ~1.5 µs, the standard encoder still takes what orjson refuses (integers past 64 bits, deep
   nesting). NaN and Infinity, which a provider's JSON may carry, are stored as null, so every
   `raw_json` is JSON that SQLite's functions read. The 10,000-task pass: 7.96 → 7.34 G
   instructions (callgrind), 566 → 504 k instructions a task added (1,000 against 10,000 tasks;
   623 k before item 31).
34. **An idle run read every recorded path** (`idle.py`, schema version 7): to trust its stamp,
   it compared a checksum of all 40,000 recorded paths, read with `group_concat` (~12 ms of a
   96 ms run on 20,000 clips, and growing with the library), and it counted unfinished tasks with
   `NOT IN`, which SQLite answers by reading every entry of the status index (1.25 ms, twice).
   Triggers now keep a count of path changes in the one-row `path_changes` table (with a random
   generation per database), and the stamp holds that count; unfinished tasks are counted through
   the ranges between the terminal statuses, an index seek (0.01 ms). The 20,000-clip library, the
   installed script, 21 alternating runs: 0.101 → 0.078 s (7.4× → 5.7× `python -c pass`).

Tried and not kept:

- **Dropping httpx for media altogether** (pycurl writing the `.part` with no httpx types):
  measured at the same wall time as the transport of item 10 back then; item 15 keeps httpx's
  response and error types and drops only its client.
- **Separate transfer and clip slots** (N transfers at a time, 2N clips in progress, so one
  clip's tagging and fsync overlap other transfers): no measurable change. Tried again after
  items 14–15 (1.05× wall, A/B, alternating), after items 19–20 (1.03×) and after item 22
  (0.97×, within the noise): more transfers in flight, each one slower by as much, the same
  files per second.
- **Hashing a body as it arrives** (after item 22: in libcurl's progress calls, as far as the
  file is on disk, so the hash would be done when the last byte lands): 97% of the bytes were
  hashed during their transfer, but the download phase did not get faster (A/B 1.02× and
  0.96×, 8 and 12 pairs): on loopback the network outruns the hash, so a transfer paused for it
  simply waits longer. Kept as it was: hashed once the body is complete.
- **Building the MP3 tags in a helper process** (mutagen run by a second interpreter fed through
  a pipe, so that it holds no GIL here): the parent's GIL time per tag fell from ~0.8 to
  ~0.24 ms, but the phase got no faster (1.04×, 10 alternating triples), while the same tags
  built for free (the first clip's reused, a timing probe only) gave 0.93×: the helper's CPU
  lands on the same two cores, and each tag then waits ~4 ms for its answer.
- **One locating hand-off per clip instead of two** (its cover and its audio located in one
  worker call): 1.00× (8 pairs); see "What bounds the download phase" below.
- **4 MiB hand-over chunks and writes** instead of 1 MiB (a quarter of the thread hops): no
  change beyond the run-to-run noise.
- **The poll requests through libcurl** (item 10's transport taught to POST, under httpx's client):
  a 50-task request cost 3.2–3.4 ms of user+system CPU against 3.3–3.6 ms through httpx's own
  stack (100-request loops, alternating): libcurl's thread hops cost in system time what they save
  in Python. Kept on httpx's own transport.
- **Raising httpcore's 64 KiB read size** (`AsyncHTTP11Connection.READ_NUM_BYTES`) cut httpx's
  CPU ~25% but meant patching a private constant of a dependency.
- **A lighter HTTP stack under httpx's client for the poll** (prototypes, a 50-task request, 300
  requests on one connection): httpcore on a plain asyncio network backend instead of anyio's,
  2.1–2.4 ms of user+system CPU against httpx's 2.2–2.4; a minimal HTTP/1.1 transport on h11 and
  asyncio streams, 1.4–1.5 ms, ~18 µs a task, at the price of owning a connection pool, TLS,
  proxies and timeouts that httpcore now keeps. Not built.
- **Three smaller cuts to a poll pass's Python** (callgrind, the 10,000-task pass, each against
  the same commit, whose own runs spread 7.29–7.40 G instructions with hash randomization):
  UTC times spelled by `isoformat` directly instead of the batch's cached spelling, 7.50 G (more:
  the batch's times repeat, and a cache hit is cheaper); loading rows with one `fetchall` instead
  of one `fetchone` a row, 7.39 G; `clip_from` reading a precomputed table of raw keys and
  parsers, 7.30 G. None is outside that spread.

Measured but not changed:

- **Imports**: SQLAlchemy, SQLModel/pydantic and httpx take about half a second to import here
  (item 5, last row); every `sync` pays it before its first request (read commands and an idle
  sync import none of them).
- **fsync**: archiver never renames a file into place before its bytes are on disk; on this disk
  that costs what `curl + sync` shows over `curl`.
- **A poll pass, per task** (10,000 running tasks, py-spy at 2,000 samples a second, after
  item 31, on a slow day of this machine): fetching ~80 µs (httpx ~43, parsing ~8, normalizing
  ~30), storing and rescheduling ~100 µs (of which SQLite's own UPDATE ~30 and `raw_json` ~16
  before item 33). Normalizing alone (a 50-task answer, timeit): CCAPI ~47 µs a task, AceData ~29,
  spread over its small steps: the frozen `TaskRecord` ~8.5 µs to build, ~3 µs a timestamp, ~4 µs
  for a `"1%"` progress; the rest of item 2's slope is system time and the interpreter's own
  work between them.
- **httpx, per poll request** (after item 28): a 50-task answer (50 kB) costs httpx ~4.2 M
  instructions (callgrind, 10 against 100 requests on one connection), mostly Python in httpx,
  httpcore, h11 and anyio, and ~3.5 ms of user+system CPU here (a loop of 100 requests), where
  `http.client` takes ~0.6 ms for the same request. httpx stays the API client for its timeouts,
  redirects, proxies and error types (item 30 took a quarter of its cost away).
- **Thread-pool size, `--jobs` above 4**: no measurable effect on loopback; 4 stays the default.
- **The GIL, after item 22.** Before it, the machine's two cores were ~1.2 busy during a sync
  (`/proc/stat`; the durable floor keeps 1.8 busy) while the transfers waited: every piece
  libcurl delivered needed the GIL in its transfer's thread, which the rest of archiver held ~40%
  of the download phase (py-spy `--gil`), and bench/floor_pycurl.py with one extra thread holding
  the GIL half the time in 5 ms stretches slowed from 1.5 s to 2.6–3.0 s (the same busy loop in
  another process: 1.8–2.0 s). A variant of that floor with libcurl writing the bodies (item
  22's way), under the same load: 0.81× the pycurl floor's time (8 alternating pairs). What still needs the GIL per file: the head's lines
  and the progress calls of each transfer, hashing and reading it back (mostly outside the GIL),
  building an MP3's tags with mutagen, the length check, and the event loop's steps between the
  hand-offs (locating, placing, recording). A shorter switch interval
  (`sys.setswitchinterval(0.0005)`) made no difference to `archiver sync` (0.98×, 8 pairs).
- **Per transfer, after items 22–24** (one sync, median of 400 transfers, timestamps from
  inside the process): 0.3 ms from the request to its worker thread, 1.5 ms to the first line of
  the answer's head (connection reused; mostly waiting for the GIL after the request went out),
  0.9 ms for the head's ~10 lines (one Python call each), then the body and the sink's checks
  (its hash, read back from the page cache, 2–3 ms for an MP3). The head could be gathered by C
  as well (libcurl writing it into memory, the body into the `.part` opened before the request,
  the status judged after): not attempted, as it moves every error answer's body into the
  `.part` to be cut off again after.
- **What bounds the download phase, after item 25.** Probes added to `archiver sync
  --jobs 4` on item 1's set (8 alternating runs each, medians): 5 ms of sleeping per clip in a
  worker thread (no GIL, no CPU) lengthened the phase by 0.04 s; 2 ms of Python per clip on the
  event loop, by 0.38 s; 2 ms of Python per clip in a worker thread, by 0.52 s; another process
  burning a fifth of a core meanwhile (2 ms in every 10), by 0.23 s. The phase is bound by work,
  the time Python holds the GIL above all (in whichever thread) and then CPU, not by waiting:
  during it the disk is ~25% busy (`/proc/diskstats`) and the cores 1.45 of 2 (`/proc/stat`),
  and the event loop answers a wake-up 0.6 ms late (median; p90 2 ms). Python's share per clip: the event
  loop's steps (~3 ms of main-thread CPU: the clip's coroutines, the retrying fetch, hand-offs,
  paths, recording), building the MP3's tags with mutagen (0.77 ms, 19 frames rendered as
  ID3v2.3), and ~20 calls from libcurl per file (head lines, progress). Fewer hand-offs alone do
  not show (one per clip fewer: 1.00×), nor does moving the work elsewhere (the tag helper
  above); a faster phase needs less work per clip.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer runs (~2 min)")
    parser.add_argument("--only", metavar="ITEMS", help=f"comma-separated subset of: {', '.join(ITEMS)}")
    parser.add_argument("--out", metavar="FILE",
                        help="where to write the report (default: docs/performance.md; --quick: stdout)")
    parser.add_argument("--workdir", metavar="DIR", help="parent of the temporary workspace (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the workspace for inspection")
    parser.add_argument("--cache", metavar="DIR", type=Path, default=peers.default_cache(),
                        help="where the peers' venv (gallery-dl, yt-dlp) is kept and reused (default: %(default)s)")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",")] if args.only else list(ITEMS)
    unknown = [name for name in chosen if name not in ITEMS]
    if unknown:
        parser.error(f"unknown item(s) {', '.join(unknown)}; choose from {', '.join(ITEMS)}")
    plan = items.QUICK if args.quick else items.FULL
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    nginx, why = peers.debian_tool("nginx", "nginx", log) if "download" in chosen else (find_nginx(), "")
    if why:
        log(f"nginx: {why}")
    sections: list[Section] = []
    failures = 0
    with workspace(args.keep, args.workdir) as work:
        bench = items.Bench(plan=plan, work=work, nginx=nginx, log=log, cache=args.cache)
        log("warming up: compiling archiver's modules once, as any installed copy has them")
        measure([sys.executable, "-c", WARM_UP], cwd=REPO)
        for name in chosen:
            log(f"== {name}")
            try:
                sections.append(ITEMS[name](bench))
            except Exception as exc:  # one broken item must not lose the others' figures
                failures += 1
                traceback.print_exc()
                sections.append(Section(title=name, intro="", columns=[],
                                        failed=f"{type(exc).__name__}: {str(exc)[:500]}"))
        fs = machine()
        fs["file system of the workspace"] = filesystem_of(work)
    python = ".venv/bin/python" if Path(sys.executable).parent.parent == REPO / ".venv" else "python"
    command = f"{python} -m bench.run" + (" --quick" if args.quick else "") + (
        f" --only {','.join(chosen)}" if args.only else "")
    dropped = dropped_python_vars()
    fs["environment"] = ("measured commands ran without " + ", ".join(f"`{d}`" for d in dropped)
                         + " (set in the runner's shell, not a user's)") if dropped else "unchanged"
    found = versions(nginx) | bench.peer_versions()
    document = render(sections, machine=fs, versions=found, command=command,
                      duration=time.monotonic() - started, quick=args.quick, profiled=PROFILED)
    out = args.out or (None if args.quick else str(REPO / "docs" / "performance.md"))
    if out in (None, "-"):
        sys.stdout.write(document)
    else:
        Path(out).write_text(document, encoding="utf-8")
        log(f"wrote {out}")
    failed_checks = [c for s in sections for c in s.checks if not c.passed]
    log(f"done: {len(failed_checks)} target(s) missed, {failures} item(s) failed to run "
        f"({' '.join(shlex.quote(a) for a in (argv or sys.argv[1:]))})")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
