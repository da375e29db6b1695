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

from sqlalchemy import text
from sqlalchemy.engine import Engine

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
        self.seen_tasks: set[int] = set()  # polled in this pass: a --now pass claims each once
        self.seen_clips: set[int] = set()  # tried in this run: a failed file waits for the next run

    def _times(self) -> dict[str, str | None]:
        now = utcnow()
        return {"me": self.me, "now": _stamp(now, None), "until": _stamp(now + self.lease, None)}

    def _run(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.begin() as conn:
            result = conn.execute(text(sql), params)
            return list(result) if result.returns_rows else []

    # --- the worker row -----------------------------------------------------------------

    def register(self, run_id: int) -> None:
        times = self._times()
        self._run("""INSERT INTO workers (name, host, pid, started_at, heartbeat_at, lease_until, run_id)
                     VALUES (:me, :host, :pid, :now, :now, :until, :run)
                     ON CONFLICT (name) DO UPDATE SET host = :host, pid = :pid, started_at = :now,
                         heartbeat_at = :now, lease_until = :until, finished_at = NULL, exit_code = NULL,
                         run_id = :run""",
                  host=socket.gethostname(), pid=os.getpid(), run=run_id, **times)

    def heartbeat(self) -> None:
        """Renew every lease this worker holds."""
        times = self._times()
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE workers SET heartbeat_at = :now, lease_until = :until WHERE name = :me"),
                         times)
            conn.execute(text("UPDATE tasks SET lease_until = :until WHERE claimed_by = :me"), times)
            conn.execute(text(f"UPDATE assets SET lease_until = :until WHERE claimed_by = :me "
                              f"AND state <> '{AssetState.DOWNLOADED.value}'"), times)
            conn.execute(text("UPDATE provider_slots SET lease_until = :until WHERE claimed_by = :me"), times)

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
        """Up to `limit` due tasks of `source` for this worker: (id, source, task_id)."""
        due = ("(last_polled IS NULL OR last_polled < :start)" if ignore_schedule
               else "(next_poll_at IS NULL OR next_poll_at <= :now)")
        seen = ", ".join(str(pk) for pk in sorted(self.seen_tasks)) or "0"
        sql = f"""UPDATE tasks SET claimed_by = :me, lease_until = :until
                  WHERE id IN (SELECT id FROM tasks WHERE source = :source AND status NOT IN ({_TERMINAL})
                               AND {due} AND {_FREE} AND id NOT IN ({seen})
                               ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
                    AND {due} AND {_FREE}
                  RETURNING id, source, task_id"""
        with self.engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _key(f"poll:{source}")})
            rows = [tuple(r) for r in conn.execute(text(sql), {**self._times(), "source": source, "limit": limit,
                                                               "start": _stamp(pass_start, None)})]
        rows.sort()
        self.seen_tasks.update(pk for pk, _s, _t in rows)
        return rows  # type: ignore[return-value]

    def release_tasks(self, ids: Sequence[int]) -> None:
        if ids:
            self._run("UPDATE tasks SET claimed_by = NULL, lease_until = NULL "
                      "WHERE claimed_by = :me AND id IN :ids".replace(":ids", f"({', '.join(map(str, ids))})"),
                      me=self.me)

    # --- assets -------------------------------------------------------------------------

    def claim_clips(self, limit: int) -> list[int]:
        """The not-yet-archived assets of up to `limit` whole clips, claimed: their asset ids."""
        done = AssetState.DOWNLOADED.value
        seen = ", ".join(str(pk) for pk in sorted(self.seen_clips)) or "0"
        sql = f"""UPDATE assets SET claimed_by = :me, lease_until = :until
                  WHERE clip_pk IN (
                      SELECT c.id FROM clips c JOIN tasks t ON t.id = c.task_pk
                      WHERE t.status = '{Status.SUCCEEDED.value}' AND c.id NOT IN ({seen})
                        AND EXISTS (SELECT 1 FROM assets a WHERE a.clip_pk = c.id AND a.state <> '{done}')
                        AND NOT EXISTS (SELECT 1 FROM assets a WHERE a.clip_pk = c.id AND a.state <> '{done}'
                                        AND a.claimed_by <> :me AND a.lease_until > :now)
                      ORDER BY c.id LIMIT :limit FOR UPDATE OF c SKIP LOCKED)
                    AND state <> '{done}' AND {_FREE}
                  RETURNING id, clip_pk"""
        rows = self._run(sql, limit=limit, **self._times())
        self.seen_clips.update(clip for _id, clip in rows)
        return sorted(asset_id for asset_id, _clip in rows)

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

    def others_busy(self, sources: Sequence[str]) -> bool:
        """Work held under another worker's live claim: --until-done waits for it (or its lapse)."""
        params = {**self._times()}
        names = ", ".join(f"'{s}'" for s in sources if "'" not in s) or "''"
        rows = self._run(f"""SELECT EXISTS (SELECT 1 FROM tasks WHERE claimed_by <> :me AND source IN ({names})
                                            AND status NOT IN ({_TERMINAL}))
                                 OR EXISTS (SELECT 1 FROM assets a JOIN clips c ON c.id = a.clip_pk
                                            JOIN tasks t ON t.id = c.task_pk
                                            WHERE t.status = '{Status.SUCCEEDED.value}'
                                              AND a.state = '{AssetState.PENDING.value}'
                                              AND (a.claimed_by IS NULL OR a.claimed_by <> :me))""", **params)
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
