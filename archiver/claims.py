"""Several sync workers on one PostgreSQL catalog: claims with a lease instead of the file lock.

A worker claims due tasks and the pending assets of whole clips with `SELECT ... FOR UPDATE SKIP
LOCKED`, writing its name and a lease end (`claimed_by`, `lease_until`); a heartbeat renews them
while it works, and a claim whose lease ran out (its worker died) may be taken by any other.
Leases are judged by the database server's clock alone (pgdb.server_time), never by a host's: a
fleet on hosts whose clocks disagree neither steals live claims nor keeps dead ones.
The UPDATE repeats the claim test on the row it writes: PostgreSQL re-checks it against the
latest committed version, so of two workers racing for a row exactly one gets it. Task claims of
one source are taken one worker at a time (an advisory lock held for the claiming statement
only), in whole batches, so a pass over N tasks costs ceil(N / batch_size) requests in all.

Also shared through the catalog: the stem of every final path (claimed before a file is placed,
so two workers never write the same name), each provider's request slots (its concurrency holds
for the fleet) and the retry budget (one per window of RETRY_WINDOW for the fleet).

A worker that stalls past its lease (a long pause, a suspended VM) may find its claims taken
over: what it then records is checked against its claims in the recording transaction (the rows
locked), and a result whose claim was lost is dropped with a warning, left to the new owner.

Each worker's temporary files carry its tag (`part_tag`), so none writes into another's; those
of dead workers (finished, or their lease over) are cleared by the others (`clear_parts`).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from .database import catalog_errors
from .errors import LockHeld
from .fields import AssetState
from .fs import discard
from .models import UTCDateTime
from .pgdb import server_time
from .providers.http import RetryBudget
from .records import TERMINAL, Status

DEFAULT_LEASE = 60.0
RETRY_WINDOW = timedelta(minutes=10)
_stamp = UTCDateTime().process_bind_param
_NOW = server_time()  # the server's clock; :lease seconds later is a lease's end
_UNTIL = server_time(":lease")
_FREE = f"(claimed_by IS NULL OR claimed_by = :me OR lease_until <= {_NOW})"
_TERMINAL = ", ".join(f"'{s.value}'" for s in TERMINAL)


@contextmanager
def _begin(engine: Engine, *, write: bool = True) -> Iterator[Connection]:
    """A transaction on the fleet's catalog. The server gone or refusing mid-run is a DatabaseError,
    which stops the downloads cleanly as anywhere else the catalog fails, not a traceback."""
    with catalog_errors(str(engine.url)), engine.begin() if write else engine.connect() as conn:
        yield conn


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _key(name: str) -> int:
    """A stable 32-bit advisory lock key for a name."""
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


def part_tag(worker: str) -> str:
    """What a worker's temporary file names carry (archive.py): no worker writes into another's."""
    return f".~w{_key(worker):08x}"


# The tag ends a temporary name: `Song.mp3.~w1a2b3c4d.part`, `Song.~w1a2b3c4d.~tag.part`.
_TAGGED = re.compile(r"(\.~w[0-9a-f]{8})(?:\.~tag)?\.part$")
_NAMES_KEY = _key("archiver:worker-names")  # taking a name waits while temporary files are cleared


def tag_of(name: str) -> str | None:
    """The worker tag a temporary file's name carries (None: not a fleet worker's)."""
    found = _TAGGED.search(name)
    return found.group(1) if found else None


def _unheard(message: str) -> None:
    """Where lost claims are reported until a sync attaches its reporter."""


class Fleet:
    """This worker's claims on one catalog (PostgreSQL only)."""

    def __init__(self, engine: Engine, worker: str, lease: float = DEFAULT_LEASE) -> None:
        self.engine = engine
        self.me = worker
        self.tag = part_tag(worker)
        self.lease = timedelta(seconds=max(1.0, lease))
        self.started = self.server_now()  # a file that failed in this run waits for the next one (server's clock)
        self.seen_tasks: set[int] = set()  # claimed in this pass (a guard: a pass claims a task once)
        self.seen_clips: set[int] = set()  # claimed in this run (the same guard for clips)
        # The claimed files this worker is archiving: checked before work on them goes on and when
        # they are recorded. Emptied before the claims are given back (see `heartbeat`).
        self.held_assets: frozenset[int] = frozenset()
        self.lost: set[int] = set()  # asset ids found taken over by another worker
        self.warn: Callable[[str], None] = _unheard  # the sync's reporter.warning

    def _run(self, sql: str, **params: Any) -> list[Any]:
        statement = text(sql)
        for name, value in params.items():
            if isinstance(value, (list, tuple)):
                statement = statement.bindparams(bindparam(name, expanding=True))
        with _begin(self.engine) as conn:
            result = conn.execute(statement, {"me": self.me, "lease": self.lease.total_seconds(), **params})
            return list(result) if result.returns_rows else []

    # --- the worker row -----------------------------------------------------------------

    def check_name(self) -> None:
        """Take this worker's name on the catalog; LockHeld while a live worker of that name works on it.

        One statement decides: of workers started at once under one name exactly one inserts (or
        takes over a finished or lapsed row); the others' INSERT waits for that row, then finds it live.
        A name is never taken while another worker clears dead workers' temporary files
        (`clear_parts`): a worker restarted under its old name resumes its own.
        """
        params = {"me": self.me, "lease": self.lease.total_seconds(), "host": socket.gethostname(),
                  "pid": os.getpid(), "key": _NAMES_KEY}
        with _begin(self.engine) as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock_shared(:key)"), params)
            taken = conn.execute(text(f"""
                INSERT INTO workers (name, host, pid, started_at, heartbeat_at, lease_until)
                VALUES (:me, :host, :pid, {_NOW}, {_NOW}, {_UNTIL})
                ON CONFLICT (name) DO UPDATE SET host = :host, pid = :pid, started_at = {_NOW},
                    heartbeat_at = {_NOW}, lease_until = {_UNTIL}, finished_at = NULL, exit_code = NULL, run_id = NULL
                WHERE workers.finished_at IS NOT NULL OR workers.lease_until IS NULL
                   OR workers.lease_until <= {_NOW}
                RETURNING name"""), params).first()
        if taken is None:
            holder = self._run("SELECT host, pid FROM workers WHERE name = :me") or [("?", "?")]
            raise LockHeld(f"worker {self.me} is already running on this catalog (host {holder[0][0]}, "
                           f"pid {holder[0][1]}); give each worker its own --worker-id")

    def check_alone(self, what: str) -> None:
        """LockHeld while any other worker is live: `what` (verify --repair, retag) rewrites files
        without taking claims, so it runs while the fleet is stopped."""
        live = self._run(f"SELECT name FROM workers WHERE finished_at IS NULL AND lease_until > {_NOW} "
                         "AND name <> :me ORDER BY name")
        if live:
            names = ", ".join(str(row[0]) for row in live[:5]) + (" …" if len(live) > 5 else "")
            raise LockHeld(f"{len(live)} sync worker(s) are running on this catalog ({names}); "
                           f"stop them before {what}")

    def register(self, run_id: int) -> None:
        """Tie this worker's row (taken by `check_name`) to its run."""
        self._run(f"UPDATE workers SET run_id = :run, heartbeat_at = {_NOW}, lease_until = {_UNTIL} "
                  "WHERE name = :me", run=run_id)

    def heartbeat(self) -> None:
        """Renew every lease this worker holds, and notice the claims it lost.

        Rows this worker is writing in another transaction at this moment are skipped, not waited
        for (waiting could close a deadlock with that transaction); the next beat renews them.
        A file this worker is archiving found under another's claim (it stalled past its lease and
        the work was taken over) is reported, and no more work is done on it (`keep`, `lost_files`).
        """
        params = {"me": self.me, "lease": self.lease.total_seconds()}
        done = AssetState.DOWNLOADED.value
        assets = sorted(self.held_assets)
        with _begin(self.engine) as conn:
            conn.execute(text(f"UPDATE workers SET heartbeat_at = {_NOW}, lease_until = {_UNTIL} WHERE name = :me"),
                         params)
            for table, extra in (("tasks", ""), ("assets", f" AND state <> '{done}'")):
                conn.execute(text(f"UPDATE {table} SET lease_until = {_UNTIL} WHERE id IN (SELECT id FROM {table} "
                                  f"WHERE claimed_by = :me{extra} FOR UPDATE SKIP LOCKED)"), params)
            conn.execute(text(f"UPDATE provider_slots SET lease_until = {_UNTIL} WHERE (provider, slot) IN ("
                              "SELECT provider, slot FROM provider_slots WHERE claimed_by = :me "
                              "FOR UPDATE SKIP LOCKED)"), params)
            lost = _taken_over(conn, assets, self.me)
        self._lose(lost & self.held_assets)  # one given back meanwhile was still this worker's when looked at

    async def renewing(self) -> None:
        """Heartbeats every third of a lease until cancelled."""
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                await asyncio.to_thread(self.heartbeat)
            except Exception:  # noqa: BLE001 - a missed beat is retried; the lease has room for two
                continue

    def server_now(self, conn: Connection | None = None) -> datetime:
        """The database server's clock, which the fleet's leases and schedule run on (asked on
        `conn` when the caller holds a transaction already)."""
        if conn is not None:
            return conn.execute(text("SELECT statement_timestamp()")).scalar_one()
        with _begin(self.engine, write=False) as conn:
            return self.server_now(conn)

    def finish(self, exit_code: int) -> None:
        """Give every claim back and record the end of the run."""
        params = {"me": self.me, "code": exit_code}
        self.held_assets = frozenset()
        with _begin(self.engine) as conn:
            conn.execute(text("UPDATE tasks SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = :me"), params)
            conn.execute(text("UPDATE assets SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = :me"),
                         params)
            conn.execute(text("UPDATE provider_slots SET claimed_by = NULL, lease_until = NULL "
                              "WHERE claimed_by = :me"), params)
            conn.execute(text(f"UPDATE workers SET finished_at = {_NOW}, heartbeat_at = {_NOW}, lease_until = NULL, "
                              "exit_code = :code WHERE name = :me"), params)

    def clear_parts(self, parts: Iterable[Path]) -> None:
        """Remove leftover temporary files (found by the library walk, none in use by this run) of
        this worker's earlier runs and of every worker not live now: finished, or its lease over
        by the server's clock. Those of live workers, and untagged ones, are left alone.

        A worker whose lease ran out is dead by definition: one merely suspended finds its file
        gone when it wakes, fails it cleanly (fs.part_gone) and retries it later. Names are not
        taken meanwhile (`check_name`): a worker restarted under a dead one's name resumes its
        files only after they are judged, never while they are being removed.
        """
        tagged = [(part, tag) for part in parts if (tag := tag_of(part.name)) is not None]
        if not tagged:
            return
        try:
            with _begin(self.engine) as conn:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _NAMES_KEY})
                live = {part_tag(str(r[0])) for r in conn.execute(text(
                    f"SELECT name FROM workers WHERE finished_at IS NULL AND lease_until > {_NOW} AND name <> :me"),
                    {"me": self.me})}  # a live worker's, even under a tag equal to this one's, stays
                discard(part for part, tag in tagged if tag not in live)
        except SQLAlchemyError:
            return  # the catalog is out of reach: they wait for the next run

    # --- tasks --------------------------------------------------------------------------

    def claim_tasks(self, source: str, limit: int, *, ignore_schedule: bool,
                    pass_start: datetime) -> list[tuple[int, str, str]]:
        """Up to `limit` tasks of `source` due when the pass began, for this worker: (id, source, task_id).

        Due when the pass began, not now: a task polled in this pass is due again only in the next,
        however short its interval. `--now` (ignore_schedule) takes those not polled in this pass.
        """
        due = ("(last_polled IS NULL OR last_polled < :start)" if ignore_schedule
               else "(next_poll_at IS NULL OR next_poll_at <= :start)")
        sql = f"""UPDATE tasks SET claimed_by = :me, lease_until = {_UNTIL}
                  WHERE id IN (SELECT id FROM tasks WHERE source = :source AND status NOT IN ({_TERMINAL})
                               AND {due} AND {_FREE}
                               ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
                    AND {due} AND {_FREE}
                  RETURNING id, source, task_id"""
        params = {"me": self.me, "lease": self.lease.total_seconds(), "source": source, "limit": limit,
                  "start": _stamp(pass_start, None)}
        with _begin(self.engine) as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _key(f"poll:{source}")})
            rows = [(int(r[0]), str(r[1]), str(r[2])) for r in conn.execute(text(sql), params)]
        fresh = sorted(row for row in rows if row[0] not in self.seen_tasks)
        if len(fresh) < len(rows):  # polled in this pass yet due again: never twice in one pass
            self.release_tasks([row[0] for row in rows if row[0] in self.seen_tasks])
        self.seen_tasks.update(row[0] for row in fresh)
        return fresh

    def release_tasks(self, ids: Sequence[int]) -> None:
        if ids:
            self._run("UPDATE tasks SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = :me AND id IN :ids",
                      ids=list(ids))

    def mine_tasks(self, conn: Connection, source: str, task_ids: Sequence[str]) -> set[str]:
        """Of these polled tasks, those still claimed by this worker, locked until `conn` commits
        (the transaction that records their results). The others were taken over after this
        worker's lease ran out: the new owner polls them, and these results are dropped."""
        if not task_ids:
            return set()
        statement = text("SELECT task_id FROM tasks WHERE source = :source AND task_id IN :ids AND claimed_by = :me "
                         "ORDER BY id FOR UPDATE").bindparams(bindparam("ids", expanding=True))
        mine = {str(r[0]) for r in conn.execute(statement, {"source": source, "ids": list(task_ids), "me": self.me})}
        lost = len(set(task_ids) - mine)
        if lost:
            self.warn(f"worker {self.me}: {lost} {source} task(s) were taken over by another worker after its lease "
                      "ran out (a stall?); their poll results are dropped")
        return mine

    # --- assets -------------------------------------------------------------------------

    def claim_clips(self, limit: int) -> list[int]:
        """The not-yet-archived assets of up to `limit` whole clips, claimed: their asset ids.

        A file that failed in this run is left for the next run, as a lone sync leaves it.
        """
        done, failed = AssetState.DOWNLOADED.value, AssetState.FAILED.value
        todo = f"(a.state <> '{done}' AND NOT (a.state = '{failed}' AND a.updated_at >= :started))"
        sql = f"""UPDATE assets SET claimed_by = :me, lease_until = {_UNTIL}
                  WHERE clip_pk IN (
                      SELECT c.id FROM clips c JOIN tasks t ON t.id = c.task_pk
                      WHERE t.status = '{Status.SUCCEEDED.value}'
                        AND EXISTS (SELECT 1 FROM assets a WHERE a.clip_pk = c.id AND {todo})
                        AND NOT EXISTS (SELECT 1 FROM assets a WHERE a.clip_pk = c.id AND a.state <> '{done}'
                                        AND a.claimed_by <> :me AND a.lease_until > {_NOW})
                      ORDER BY c.id LIMIT :limit FOR UPDATE OF c SKIP LOCKED)
                    AND state <> '{done}' AND {_FREE}
                  RETURNING id, clip_pk"""
        rows = self._run(sql, limit=limit, started=_stamp(self.started, None))
        fresh = [(int(asset), int(clip)) for asset, clip in rows if clip not in self.seen_clips]
        if not fresh:  # only clips tried in this run came back: nothing new to do
            self.release_assets()
            return []
        self.seen_clips.update(clip for _asset, clip in fresh)
        self.held_assets = frozenset(asset for asset, _clip in fresh)
        return sorted(asset for asset, _clip in fresh)

    def release_assets(self) -> None:
        self.held_assets = frozenset()
        self._run("UPDATE assets SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = :me")

    def keep(self, asset_ids: Iterable[int]) -> bool:
        """Renew this worker's claims on these files before more work on them (fetching a clip,
        placing a file); False when any was taken over, after a stall past its lease, by another
        worker, which now does that work. Files not claimed (a repair runs alone) pass unchecked."""
        held = self.held_assets
        ids = sorted({asset for asset in asset_ids if asset in held})
        if not ids:
            return True
        if self.lost.intersection(ids):
            return False
        kept = {int(r[0]) for r in self._run(f"UPDATE assets SET lease_until = {_UNTIL} "
                                             "WHERE id IN :ids AND claimed_by = :me RETURNING id", ids=ids)}
        self._lose(set(ids) - kept)
        return len(kept) == len(ids)

    def lost_files(self, conn: Connection, asset_ids: Sequence[int]) -> dict[int, str | None]:
        """Of these files about to be recorded, those whose claim this worker lost, each with the
        path the catalog records it at (None while it is not archived). The rows stay locked until
        `conn` commits, so no claim changes hands between this check and the recording."""
        held = self.held_assets
        ids = sorted({asset for asset in asset_ids if asset in held})
        if not ids:
            return {}
        statement = text("SELECT id, claimed_by, state, path FROM assets WHERE id IN :ids ORDER BY id FOR UPDATE"
                         ).bindparams(bindparam("ids", expanding=True))
        done = AssetState.DOWNLOADED.value
        lost = {int(asset): (path if state == done else None)
                for asset, owner, state, path in conn.execute(statement, {"ids": ids}) if owner != self.me}
        self._lose(set(lost))
        return lost

    def _lose(self, ids: set[int]) -> None:
        fresh = ids - self.lost
        self.lost.update(ids)
        if fresh:
            self.warn(f"worker {self.me}: {len(fresh)} file(s) it was archiving were taken over by another worker "
                      "after its lease ran out (a stall?); left to that worker, not recorded here")

    def claim_stem(self, stem: str, clip_pk: int) -> bool:
        """Claim a final path's stem for a clip; False when another clip holds it."""
        rows = self._run(f"""INSERT INTO path_claims (stem, clip_pk, claimed_by, claimed_at)
                             VALUES (:stem, :clip, :me, {_NOW})
                             ON CONFLICT (stem) DO UPDATE SET claimed_by = :me
                                 WHERE path_claims.clip_pk = :clip
                             RETURNING clip_pk""", stem=stem, clip=clip_pk)
        return bool(rows)

    def others_busy(self, sources: Sequence[str], files: bool = True) -> bool:
        """Work under another worker's claim, live or lapsed: --until-done waits for it (a lapsed
        claim is taken over on the next round). Unclaimed files are left to whoever claims them."""
        assets = f"""EXISTS (SELECT 1 FROM assets WHERE state = '{AssetState.PENDING.value}'
                                 AND claimed_by IS NOT NULL AND claimed_by <> :me)"""
        rows = self._run(f"""SELECT EXISTS (SELECT 1 FROM tasks WHERE claimed_by IS NOT NULL AND claimed_by <> :me
                                            AND source IN :sources AND status NOT IN ({_TERMINAL}))
                                 OR {assets if files else 'FALSE'}""",
                         sources=list(sources) or [""])
        return bool(rows and rows[0][0])

    def new_pass(self) -> None:
        self.seen_tasks.clear()

    # --- shared provider limits ---------------------------------------------------------

    @asynccontextmanager
    async def slot(self, provider: str, concurrency: int) -> AsyncIterator[None]:
        """One of the provider's `concurrency` request slots, shared by the fleet."""
        got = await asyncio.to_thread(self._take_slot, provider, max(1, concurrency))
        while got is None:
            await asyncio.sleep(0.02)
            got = await asyncio.to_thread(self._take_slot, provider, max(1, concurrency))
        try:
            yield
        finally:
            await asyncio.to_thread(self._run, "UPDATE provider_slots SET claimed_by = NULL, lease_until = NULL "
                                    "WHERE provider = :provider AND slot = :slot AND claimed_by = :me",
                                    provider=provider, slot=got)

    def _take_slot(self, provider: str, concurrency: int) -> int | None:
        params = {"me": self.me, "lease": self.lease.total_seconds(), "provider": provider, "n": concurrency}
        with _begin(self.engine) as conn:
            conn.execute(text("INSERT INTO provider_slots (provider, slot) SELECT :provider, n "
                              "FROM generate_series(0, :top) AS n ON CONFLICT DO NOTHING"),
                         {"provider": provider, "top": concurrency - 1})
            row = conn.execute(text(f"""UPDATE provider_slots SET claimed_by = :me, lease_until = {_UNTIL}
                                       WHERE (provider, slot) IN (
                                           SELECT provider, slot FROM provider_slots
                                           WHERE provider = :provider AND slot < :n
                                             AND (claimed_by IS NULL OR lease_until <= {_NOW})
                                           ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED)
                                         AND (claimed_by IS NULL OR lease_until <= {_NOW})
                                       RETURNING slot"""), params)
            found = row.first()
        return None if found is None else int(found[0])


def _taken_over(conn: Connection, ids: list[int], me: str) -> set[int]:
    """Of files this worker claimed, those now claimed by another worker or given back by one."""
    if not ids:
        return set()
    statement = text("SELECT id FROM assets WHERE id IN :ids AND claimed_by IS DISTINCT FROM :me"
                     ).bindparams(bindparam("ids", expanding=True))
    return {int(r[0]) for r in conn.execute(statement, {"ids": ids, "me": me})}


class FleetBudget(RetryBudget):
    """The retry budget of the whole fleet: `total` retries per RETRY_WINDOW, counted in the catalog
    (its window judged by the server's clock)."""

    def __init__(self, engine: Engine, total: int) -> None:
        super().__init__(total)
        self.engine = engine
        self.total = total

    def take(self) -> bool:
        params = {"total": self.total, "back": -RETRY_WINDOW.total_seconds()}
        with _begin(self.engine) as conn:
            conn.execute(text(f"INSERT INTO retry_budget (name, window_start, used) VALUES ('fleet', {_NOW}, 0) "
                              "ON CONFLICT DO NOTHING"), params)
            conn.execute(text(f"UPDATE retry_budget SET window_start = {_NOW}, used = 0 "
                              f"WHERE name = 'fleet' AND window_start < {server_time(':back')}"), params)
            row = conn.execute(text("UPDATE retry_budget SET used = used + 1 WHERE name = 'fleet' AND used < :total "
                                    "RETURNING used"), params).first()
        self.left = 0 if row is None else self.total - int(row[0])
        return row is not None
