"""Several sync workers on one PostgreSQL catalog: claims with a lease instead of the file lock.

A worker claims due tasks and the pending assets of whole clips with `SELECT ... FOR UPDATE SKIP
LOCKED`, writing its name and a lease end (`claimed_by`, `lease_until`); a heartbeat renews them
while it works, and a claim whose lease ran out (its worker died) may be taken by any other.
The UPDATE repeats the claim test on the row it writes: PostgreSQL re-checks it against the
latest committed version, so of two workers racing for a row exactly one gets it. Task claims of
one source are taken one worker at a time (an advisory lock held for the claiming statement
only), in whole batches, so a pass over N tasks costs ceil(N / batch_size) requests in all.

Also shared through the catalog: the stem of every final path (claimed before a file is placed,
so two workers never write the same name), each provider's request slots (its concurrency holds
for the fleet) and the retry budget (one per window of RETRY_WINDOW for the fleet).
"""

from __future__ import annotations

import asyncio
import os
import socket
import zlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine

from .errors import LockHeld
from .fields import AssetState
from .models import UTCDateTime, utcnow
from .providers.http import RetryBudget
from .records import TERMINAL, Status

DEFAULT_LEASE = 60.0
RETRY_WINDOW = timedelta(minutes=10)
_stamp = UTCDateTime().process_bind_param
_FREE = "(claimed_by IS NULL OR claimed_by = :me OR lease_until <= :now)"
_TERMINAL = ", ".join(f"'{s.value}'" for s in TERMINAL)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _key(name: str) -> int:
    """A stable 32-bit advisory lock key for a name."""
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


class Fleet:
    """This worker's claims on one catalog (PostgreSQL only)."""

    def __init__(self, engine: Engine, worker: str, lease: float = DEFAULT_LEASE) -> None:
        self.engine = engine
        self.me = worker
        self.lease = timedelta(seconds=max(1.0, lease))
        self.started = utcnow()  # a file that failed in this run waits for the next one
        self.seen_tasks: set[int] = set()  # claimed in this pass (a guard: a pass claims a task once)
        self.seen_clips: set[int] = set()  # claimed in this run (the same guard for clips)

    def _times(self) -> dict[str, str | None]:
        now = utcnow()
        return {"me": self.me, "now": _stamp(now, None), "until": _stamp(now + self.lease, None)}

    def _run(self, sql: str, **params: Any) -> list[Any]:
        statement = text(sql)
        for name, value in params.items():
            if isinstance(value, (list, tuple)):
                statement = statement.bindparams(bindparam(name, expanding=True))
        with self.engine.begin() as conn:
            result = conn.execute(statement, params)
            return list(result) if result.returns_rows else []

    # --- the worker row -----------------------------------------------------------------

    def check_name(self) -> None:
        """LockHeld while a live worker of the same name works on this catalog."""
        times = self._times()
        alive = self._run("SELECT host, pid FROM workers WHERE name = :me AND finished_at IS NULL "
                          "AND lease_until > :now", **times)
        if alive:
            raise LockHeld(f"worker {self.me} is already running on this catalog (host {alive[0][0]}, "
                           f"pid {alive[0][1]}); give each worker its own --worker-id")

    def check_alone(self, what: str) -> None:
        """LockHeld while any worker is live: `what` (verify --repair, retag) rewrites files
        without taking claims, so it runs while the fleet is stopped."""
        live = self._run("SELECT name FROM workers WHERE finished_at IS NULL AND lease_until > :now "
                         "ORDER BY name", **self._times())
        if live:
            names = ", ".join(str(row[0]) for row in live[:5]) + (" …" if len(live) > 5 else "")
            raise LockHeld(f"{len(live)} sync worker(s) are running on this catalog ({names}); "
                           f"stop them before {what}")

    def register(self, run_id: int) -> None:
        times = self._times()
        self._run("""INSERT INTO workers (name, host, pid, started_at, heartbeat_at, lease_until, run_id)
                     VALUES (:me, :host, :pid, :now, :now, :until, :run)
                     ON CONFLICT (name) DO UPDATE SET host = :host, pid = :pid, started_at = :now,
                         heartbeat_at = :now, lease_until = :until, finished_at = NULL, exit_code = NULL,
                         run_id = :run""",
                  host=socket.gethostname(), pid=os.getpid(), run=run_id, **times)

    def heartbeat(self) -> None:
        """Renew every lease this worker holds.

        Rows this worker is writing in another transaction at this moment are skipped, not waited
        for (waiting could close a deadlock with that transaction); the next beat renews them.
        """
        times = self._times()
        done = AssetState.DOWNLOADED.value
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE workers SET heartbeat_at = :now, lease_until = :until WHERE name = :me"),
                         times)
            for table, extra in (("tasks", ""), ("assets", f" AND state <> '{done}'")):
                conn.execute(text(f"UPDATE {table} SET lease_until = :until WHERE id IN (SELECT id FROM {table} "
                                  f"WHERE claimed_by = :me{extra} FOR UPDATE SKIP LOCKED)"), times)
            conn.execute(text("UPDATE provider_slots SET lease_until = :until WHERE (provider, slot) IN ("
                              "SELECT provider, slot FROM provider_slots WHERE claimed_by = :me "
                              "FOR UPDATE SKIP LOCKED)"), times)

    async def renewing(self) -> None:
        """Heartbeats every third of a lease until cancelled."""
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                await asyncio.to_thread(self.heartbeat)
            except Exception:  # noqa: BLE001 - a missed beat is retried; the lease has room for two
                continue

    def finish(self, exit_code: int) -> None:
        """Give every claim back and record the end of the run."""
        times = self._times()
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE tasks SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = :me"), times)
            conn.execute(text("UPDATE assets SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = :me"),
                         times)
            conn.execute(text("UPDATE provider_slots SET claimed_by = NULL, lease_until = NULL "
                              "WHERE claimed_by = :me"), times)
            conn.execute(text("UPDATE workers SET finished_at = :now, heartbeat_at = :now, lease_until = NULL, "
                              "exit_code = :code WHERE name = :me"), {**times, "code": exit_code})

    # --- tasks --------------------------------------------------------------------------

    def claim_tasks(self, source: str, limit: int, *, ignore_schedule: bool,
                    pass_start: datetime) -> list[tuple[int, str, str]]:
        """Up to `limit` tasks of `source` due when the pass began, for this worker: (id, source, task_id).

        Due when the pass began, not now: a task polled in this pass is due again only in the next,
        however short its interval. `--now` (ignore_schedule) takes those not polled in this pass.
        """
        due = ("(last_polled IS NULL OR last_polled < :start)" if ignore_schedule
               else "(next_poll_at IS NULL OR next_poll_at <= :start)")
        sql = f"""UPDATE tasks SET claimed_by = :me, lease_until = :until
                  WHERE id IN (SELECT id FROM tasks WHERE source = :source AND status NOT IN ({_TERMINAL})
                               AND {due} AND {_FREE}
                               ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
                    AND {due} AND {_FREE}
                  RETURNING id, source, task_id"""
        with self.engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _key(f"poll:{source}")})
            rows = [(int(r[0]), str(r[1]), str(r[2])) for r in conn.execute(
                text(sql), {**self._times(), "source": source, "limit": limit, "start": _stamp(pass_start, None)})]
        fresh = sorted(row for row in rows if row[0] not in self.seen_tasks)
        if len(fresh) < len(rows):  # polled in this pass yet due again: never twice in one pass
            self.release_tasks([row[0] for row in rows if row[0] in self.seen_tasks])
        self.seen_tasks.update(row[0] for row in fresh)
        return fresh

    def release_tasks(self, ids: Sequence[int]) -> None:
        if ids:
            self._run("UPDATE tasks SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = :me AND id IN :ids",
                      me=self.me, ids=list(ids))

    # --- assets -------------------------------------------------------------------------

    def claim_clips(self, limit: int) -> list[int]:
        """The not-yet-archived assets of up to `limit` whole clips, claimed: their asset ids.

        A file that failed in this run is left for the next run, as a lone sync leaves it.
        """
        done, failed = AssetState.DOWNLOADED.value, AssetState.FAILED.value
        todo = f"(a.state <> '{done}' AND NOT (a.state = '{failed}' AND a.updated_at >= :started))"
        sql = f"""UPDATE assets SET claimed_by = :me, lease_until = :until
                  WHERE clip_pk IN (
                      SELECT c.id FROM clips c JOIN tasks t ON t.id = c.task_pk
                      WHERE t.status = '{Status.SUCCEEDED.value}'
                        AND EXISTS (SELECT 1 FROM assets a WHERE a.clip_pk = c.id AND {todo})
                        AND NOT EXISTS (SELECT 1 FROM assets a WHERE a.clip_pk = c.id AND a.state <> '{done}'
                                        AND a.claimed_by <> :me AND a.lease_until > :now)
                      ORDER BY c.id LIMIT :limit FOR UPDATE OF c SKIP LOCKED)
                    AND state <> '{done}' AND {_FREE}
                  RETURNING id, clip_pk"""
        rows = self._run(sql, limit=limit, started=_stamp(self.started, None), **self._times())
        fresh = [(int(asset), int(clip)) for asset, clip in rows if clip not in self.seen_clips]
        if not fresh:  # only clips tried in this run came back: nothing new to do
            self.release_assets()
            return []
        self.seen_clips.update(clip for _asset, clip in fresh)
        return sorted(asset for asset, _clip in fresh)

    def release_assets(self) -> None:
        self._run("UPDATE assets SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = :me", me=self.me)

    def claim_stem(self, stem: str, clip_pk: int) -> bool:
        """Claim a final path's stem for a clip; False when another clip holds it."""
        rows = self._run("""INSERT INTO path_claims (stem, clip_pk, claimed_by, claimed_at)
                            VALUES (:stem, :clip, :me, :now)
                            ON CONFLICT (stem) DO UPDATE SET claimed_by = :me
                                WHERE path_claims.clip_pk = :clip
                            RETURNING clip_pk""", stem=stem, clip=clip_pk, **self._times())
        return bool(rows)

    def others_busy(self, sources: Sequence[str], files: bool = True) -> bool:
        """Work under another worker's claim, live or lapsed: --until-done waits for it (a lapsed
        claim is taken over on the next round). Unclaimed files are left to whoever claims them."""
        assets = f"""EXISTS (SELECT 1 FROM assets WHERE state = '{AssetState.PENDING.value}'
                                 AND claimed_by IS NOT NULL AND claimed_by <> :me)"""
        rows = self._run(f"""SELECT EXISTS (SELECT 1 FROM tasks WHERE claimed_by IS NOT NULL AND claimed_by <> :me
                                            AND source IN :sources AND status NOT IN ({_TERMINAL}))
                                 OR {assets if files else 'FALSE'}""",
                         sources=list(sources) or [""], **self._times())
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
                                    provider=provider, slot=got, me=self.me)

    def _take_slot(self, provider: str, concurrency: int) -> int | None:
        times = self._times()
        with self.engine.begin() as conn:
            conn.execute(text("INSERT INTO provider_slots (provider, slot) SELECT :provider, n "
                              "FROM generate_series(0, :top) AS n ON CONFLICT DO NOTHING"),
                         {"provider": provider, "top": concurrency - 1})
            row = conn.execute(text(f"""UPDATE provider_slots SET claimed_by = :me, lease_until = :until
                                       WHERE (provider, slot) IN (
                                           SELECT provider, slot FROM provider_slots
                                           WHERE provider = :provider AND slot < :n
                                             AND (claimed_by IS NULL OR lease_until <= :now)
                                           ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED)
                                         AND (claimed_by IS NULL OR lease_until <= :now)
                                       RETURNING slot"""), {**times, "provider": provider, "n": concurrency})
            found = row.first()
        return None if found is None else int(found[0])


class FleetBudget(RetryBudget):
    """The retry budget of the whole fleet: `total` retries per RETRY_WINDOW, counted in the catalog."""

    def __init__(self, engine: Engine, total: int) -> None:
        super().__init__(total)
        self.engine = engine
        self.total = total

    def take(self) -> bool:
        now = utcnow()
        params = {"now": _stamp(now, None), "old": _stamp(now - RETRY_WINDOW, None), "total": self.total}
        with self.engine.begin() as conn:
            conn.execute(text("INSERT INTO retry_budget (name, window_start, used) VALUES ('fleet', :now, 0) "
                              "ON CONFLICT DO NOTHING"), params)
            conn.execute(text("UPDATE retry_budget SET window_start = :now, used = 0 "
                              "WHERE name = 'fleet' AND window_start < :old"), params)
            row = conn.execute(text("UPDATE retry_budget SET used = used + 1 WHERE name = 'fleet' AND used < :total "
                                    "RETURNING used"), params).first()
        self.left = 0 if row is None else self.total - int(row[0])
        return row is not None
