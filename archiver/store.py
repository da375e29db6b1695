"""The write side of the library database: opening, migrating, and idempotent upserts.

Every write happens in one transaction per batch of records, so a crash leaves either the old or
the new state. Stale payloads (an older `updated_at`, or a running record after a finished one)
never overwrite newer data.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from .database import as_stored, catalog_errors, check_readable, db_message, open_readonly, open_writable
from .errors import DatabaseError
from .fields import AssetState
from .models import Asset, Clip, SyncRun, Task, UTCDateTime, utcnow
from .records import TERMINAL, PollKind, PollOutcome, Status, TaskRecord
from .upsert import SCHEDULE, ApplyResult, Batch, chunks, run_many


# Store.asset_done runs once per archived file: one prepared UPDATE costs ~0.3 ms where loading the
# row through the ORM and flushing it cost ~1.4 ms.
_ASSET_DONE = text(
    "UPDATE assets SET path = :path, size = :size, sha256 = :sha256, tagged = :tagged, "
    f"state = '{AssetState.DOWNLOADED.value}', last_error = NULL, warning = :warning, updated_at = :now, "
    "downloaded_at = CASE WHEN :transfer = 1 THEN :now ELSE downloaded_at END, "
    "attempts = attempts + :transfer WHERE id = :id"
).bindparams(bindparam("now", type_=UTCDateTime()))

# A 404 may be a typo in a base URL or a provider outage, not a task that will never exist: it
# is an error of the run until the task has been not-found this long and this many polls in a row.
NOT_FOUND_AFTER = timedelta(days=7)
NOT_FOUND_POLLS = 5

_REQUEUE = (
    f"UPDATE tasks SET status = '{Status.PENDING.value}', provider_status = NULL, error = NULL, idle_polls = 0, "
    "poll_errors = 0, not_found_since = NULL, next_poll_at = :now, updated_at = :now WHERE id = :id"
)
_INSERT_TASK = (
    "INSERT INTO tasks (source, task_id, status, first_seen, updated_at, next_poll_at, polls, idle_polls, "
    f"poll_errors) VALUES (:source, :task_id, '{Status.PENDING.value}', :now, :now, :now, 0, 0, 0) "
    "ON CONFLICT (source, task_id) DO NOTHING"  # another `add` of the same id got there first
)
# PostgreSQL takes the ids as one array, in one statement each way: a statement per 500 ids is
# planned without the unique index while the table is not yet analyzed, and then scans every task
# of the source each time (100,000 ids: seconds, where these take well under one).
_PG_KNOWN = text("SELECT task_id, id, status FROM tasks "
                 "WHERE source = :source AND task_id = ANY(CAST(:ids AS text[]))")
_PG_INSERT_TASKS = text(
    "INSERT INTO tasks (source, task_id, status, first_seen, updated_at, next_poll_at, polls, idle_polls, "
    f"poll_errors) SELECT :source, t, '{Status.PENDING.value}', :now, :now, :now, 0, 0, 0 "
    "FROM unnest(CAST(:ids AS text[])) WITH ORDINALITY AS given(t, n) ORDER BY n "
    "ON CONFLICT (source, task_id) DO NOTHING"
)


class Added(NamedTuple):
    """What `add_tasks` did with the ids it was given."""

    new: int
    requeued: int  # known failed tasks put back in the queue
    known: int  # already known and not failed: left alone


class DueTask(NamedTuple):
    """A task to poll: what a poll pass needs of it."""

    id: int
    source: str
    task_id: str


class Store:
    """One library database. Cheap to create; call `close()` (or use `with`) when done."""

    def __init__(self, url: str, *, create: bool = True, readonly: bool = False) -> None:
        """`readonly`: for the read commands; never creates, migrates or writes anything."""
        self.url = url
        self.readonly = readonly
        self.fleet: Any = None  # a claims.Fleet when this store serves one worker of a PostgreSQL fleet
        if readonly:
            self.engine: Engine = open_readonly(url)
            self.dialect = self.engine.dialect.name
            try:
                check_readable(self.engine, url)
            except BaseException:
                self.engine.dispose()
                raise
            return
        self.engine = open_writable(url, create=create)
        self.dialect = self.engine.dialect.name
        try:
            from .migrations import migrate

            migrate(self.engine)
        except (SQLAlchemyError, sqlite3.DatabaseError) as exc:
            self.engine.dispose()
            raise DatabaseError(db_message(url, exc)) from None
        except BaseException:
            self.engine.dispose()
            raise

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on any error."""
        with catalog_errors(self.url), Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A plain connection for reads; damage found by any query is a DatabaseError.

        Opening checks only the header and schema: a bad page elsewhere surfaces in whatever
        query reads it, so every query goes through here or `session`.
        """
        with catalog_errors(self.url), self.engine.connect() as conn:
            yield conn

    # --- tasks ---------------------------------------------------------------------------

    def add_tasks(self, source: str, task_ids: Iterable[str], now: datetime | None = None) -> Added:
        """Register task ids to poll; a known failed one goes back in the queue.

        Plain driver-level statements, not ORM objects: `add --file` of 100,000 ids takes about
        a second this way.
        """
        stamp = UTCDateTime().process_bind_param(now or utcnow(), None)
        wanted = list(dict.fromkeys(t.strip() for t in task_ids if t and t.strip()))
        known: dict[str, tuple[int, str]] = {}
        postgres = self.dialect == "postgresql"
        if postgres:  # compared as stored: PostgreSQL text holds no NUL (database.as_stored)
            wanted = list(dict.fromkeys(as_stored(wanted)))
        with self.session() as s:
            conn = s.connection()
            for part in [wanted] if postgres else chunks(wanted):
                rows = (conn.execute(_PG_KNOWN, {"source": source, "ids": list(part)}) if postgres else
                        conn.execute(select(Task.task_id, Task.id, Task.status)
                                     .where(Task.source == source, col(Task.task_id).in_(part))))
                known.update((task_id, (pk, status)) for task_id, pk, status in rows)
            new = [{"source": source, "task_id": t, "now": stamp} for t in wanted if t not in known]
            failed = [{"id": pk, "now": stamp} for pk, status in known.values() if status == Status.FAILED.value]
            inserted = 0
            if new and postgres:
                inserted = conn.execute(_PG_INSERT_TASKS, {"source": source, "now": stamp,
                                                           "ids": [r["task_id"] for r in new]}).rowcount
            elif new:
                inserted = run_many(conn, _INSERT_TASK, new)
            if failed:
                run_many(conn, _REQUEUE, failed)
        # ids another `add` inserted between the lookup and the insert count as known
        return Added(inserted, len(failed), len(known) - len(failed) + len(new) - inserted)

    def requeue(self, task_pks: Sequence[int], now: datetime | None = None) -> int:
        """Put tasks back in the queue, due now, their error counters reset; returns how many."""
        stamp = UTCDateTime().process_bind_param(now or utcnow(), None)
        if task_pks:
            with self.session() as s:
                run_many(s.connection(), _REQUEUE, [{"id": pk, "now": stamp} for pk in task_pks])
        return len(task_pks)

    def apply(self, records: Sequence[TaskRecord], now: datetime | None = None) -> ApplyResult:
        """Upsert normalized records (one transaction). Idempotent; stale records are skipped."""
        now = now or utcnow()
        result = ApplyResult()
        if self.dialect == "postgresql":
            records = [_storable_ids(r) for r in records]
        with self.session() as s:
            _apply(s.connection(), records, now, result)
        return result

    def record_polls(self, source: str, records: Sequence[TaskRecord], outcomes: dict[str, PollOutcome],
                     base: float, cap: float) -> tuple[ApplyResult, set[str], dict[str, PollOutcome]]:
        """What one poll of `source` brought: `apply` and `schedule` in one transaction, an
        answered task's row written once (see upsert). A fleet worker records only the tasks it
        still claims (claims.Fleet.mine_tasks), dropping the others' results, at the server's
        time: a host whose clock runs behind would otherwise make its tasks due again at once.
        Returns what `apply` and `schedule` return, and the outcomes that were recorded."""
        result = ApplyResult()
        with self.session() as s:
            conn = s.connection()
            if self.fleet is not None:
                now = self.fleet.server_now(conn)
                mine = self.fleet.mine_tasks(conn, source, list(outcomes))
                outcomes = {task_id: outcome for task_id, outcome in outcomes.items() if task_id in mine}
                records = [r for r in records if r.task_id in mine]
            else:
                now = utcnow()
            if self.dialect == "postgresql":
                records = [_storable_ids(r) for r in records]
            batches = _apply(conn, records, now, result, defer=source)
            given_up = self._schedule(conn, source, outcomes, base, cap, now, changed=set(result.changed_task_ids),
                                      batch=batches.get(source))
        return result, given_up, outcomes

    def due_tasks(self, now: datetime, sources: Sequence[str] | None = None,
                  ignore_schedule: bool = False) -> list[DueTask]:
        """Tasks not in a terminal state whose next poll time has come (keys only: a pass may hold 10,000)."""
        terminal = [s.value for s in TERMINAL]
        query = select(Task.id, Task.source, Task.task_id).where(col(Task.status).not_in(terminal))
        if not ignore_schedule:
            query = query.where((Task.next_poll_at == None) | (Task.next_poll_at <= now))  # noqa: E711
        if sources is not None:
            query = query.where(col(Task.source).in_(list(sources)))
        with self.connect() as conn:
            return [DueTask(*row) for row in conn.execute(query.order_by(Task.source, Task.id))]

    def next_due(self, sources: Sequence[str] | None = None) -> datetime | None:
        """When the earliest unfinished task is next due (None when nothing is unfinished)."""
        query = select(func.min(Task.next_poll_at)).where(_unfinished(sources))
        with self.session() as s:
            value = s.exec(query).one()
        if value is None:
            return utcnow() if self.unfinished_count(sources) else None
        return datetime.fromisoformat(value) if isinstance(value, str) else value

    def unfinished_count(self, sources: Sequence[str] | None = None, *, unknown_since: datetime | None = None) -> int:
        """Tasks not yet finished; with `unknown_since`, not those the provider has answered "not
        found" for since before then (which goes on for up to a week before they are given up)."""
        clause = _unfinished(sources)
        if unknown_since is not None:
            clause = clause & (col(Task.not_found_since).is_(None) | (col(Task.not_found_since) > unknown_since))
        with self.session() as s:
            return s.exec(select(func.count()).select_from(Task).where(clause)).one()

    def schedule(self, source: str, outcomes: dict[str, PollOutcome], base: float, cap: float, now: datetime,
                 *, changed: set[str], not_found_after: timedelta = NOT_FOUND_AFTER,
                 not_found_polls: int = NOT_FOUND_POLLS) -> set[str]:
        """After a poll: set each task's next poll time and error counters (`record_polls` does
        it in the transaction that stores the answers).

        Returns the ids that were not found for `not_found_after` and `not_found_polls` in a row, and so
        are failed now.
        """
        with self.session() as s:
            return self._schedule(s.connection(), source, outcomes, base, cap, now, changed=changed,
                                  not_found_after=not_found_after, not_found_polls=not_found_polls)

    def _schedule(self, conn: Connection, source: str, outcomes: dict[str, PollOutcome], base: float, cap: float,
                  now: datetime, *, changed: set[str], not_found_after: timedelta = NOT_FOUND_AFTER,
                  not_found_polls: int = NOT_FOUND_POLLS, batch: Batch | None = None) -> set[str]:
        # Every polled task: its three counters read and one driver-level executemany (times
        # formatted once, not per row) cost a third of loading each row as an ORM object and
        # flushing it (10,000 tasks: 1.65 s -> 0.5 s). In `record_polls` the batch that stored the
        # answers read the counters already, and writes an answered row once with its schedule.
        given_up: set[str] = set()
        updates: list[dict[str, Any]] = []
        stamp = UTCDateTime().process_bind_param  # the text every datetime column holds
        now_text = stamp(now, None)
        next_at: dict[int, str | None] = {}  # exponent -> next poll time; only a few differ
        rows: list[Any] = []
        unknown = list(outcomes)
        if batch is not None:  # the tasks it stored are rows it read or wrote itself
            known = {task_id: batch.polled(task_id) for task_id in unknown}
            rows = [(row[0], task_id, *row[1:]) for task_id, row in known.items() if row is not None]
            unknown = [task_id for task_id, row in known.items() if row is None]
        for part in chunks(unknown):
            rows.extend(conn.execute(select(Task.id, Task.task_id, Task.idle_polls, Task.poll_errors,
                                            Task.not_found_since)
                                     .where(Task.source == source, col(Task.task_id).in_(part))))
        for pk, task_id, idle_polls, poll_errors, since in rows:
            outcome = outcomes[task_id]
            failed, message, status, provider_status = False, None, None, None
            if outcome.kind is PollKind.OK:
                poll_errors, since = 0, None
                idle_polls = 0 if task_id in changed else idle_polls + 1
            else:
                failed, message, poll_errors = True, outcome.message, poll_errors + 1
                if outcome.kind is PollKind.NOT_FOUND:
                    since = since or now
                    if poll_errors >= not_found_polls and now - since >= not_found_after:
                        status, provider_status = Status.FAILED.value, "NOT_FOUND"
                        given_up.add(task_id)
            exponent = min(idle_polls + poll_errors, 30)
            if exponent not in next_at:
                next_at[exponent] = stamp(now + timedelta(seconds=min(cap, base * (2 ** exponent))), None)
            updates.append({"id": pk, "now": now_text, "idle_polls": idle_polls, "poll_errors": poll_errors,
                            "next_poll_at": next_at[exponent], "failed": failed, "error": message,
                            "status": status, "provider_status": provider_status,
                            "not_found_since": stamp(since, None)})
        if batch is not None:
            batch.schedule(updates)
        elif updates:
            run_many(conn, SCHEDULE, updates)  # one executemany, not 10,000 ORM objects
        return given_up

    # --- assets --------------------------------------------------------------------------

    def claim_stem(self, stem: str, clip_pk: int) -> bool:
        """Claim a final path's stem for a clip across a fleet; a lone writer always may."""
        return True if self.fleet is None else bool(self.fleet.claim_stem(stem, clip_pk))

    def keep_claims(self, asset_ids: Sequence[int]) -> bool:
        """Whether this worker may go on with these files: always for a lone writer; a fleet worker
        renews its claims on them, False when one was taken over (claims.Fleet.keep)."""
        return True if self.fleet is None else bool(self.fleet.keep(asset_ids))

    def downloaded_count(self) -> int:
        """How many files the database says are archived."""
        with self.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(DISTINCT path) FROM assets WHERE state = :state"),
                                    {"state": AssetState.DOWNLOADED.value}).scalar() or 0)

    def downloaded_paths(self) -> dict[str, int]:
        """Relative path -> asset id of every file the database says is archived (one query)."""
        with self.connect() as conn:
            rows = conn.execute(text("SELECT path, id FROM assets WHERE state = :state AND path IS NOT NULL"),
                                {"state": AssetState.DOWNLOADED.value})
            return {path: asset_id for path, asset_id in rows}

    def all_paths(self) -> set[str]:
        """Every path recorded for any asset, case-folded: a new file must not collide with one."""
        with self.connect() as conn:
            return {p.casefold() for (p,) in conn.execute(text("SELECT path FROM assets WHERE path IS NOT NULL"))}

    def mark_missing(self, asset_ids: Sequence[int], now: datetime | None = None) -> None:
        """Files gone from disk: fetch them again, at the same path, on this run."""
        with self.session() as s:
            for part in chunks(list(asset_ids)):
                for asset in s.exec(select(Asset).where(col(Asset.id).in_(part))):
                    asset.state = AssetState.PENDING
                    asset.last_error = "file missing from disk"
                    asset.updated_at = now or utcnow()

    def pending_work(self, asset_ids: Sequence[int] | None = None) -> list[tuple[Clip, Task, list[Asset]]]:
        """Clips of succeeded tasks with at least one asset not yet archived, with all their assets."""
        query = (select(Asset.clip_pk).join(Clip, col(Clip.id) == Asset.clip_pk)
                 .join(Task, col(Task.id) == Clip.task_pk)
                 .where(Task.status == Status.SUCCEEDED.value, Asset.state != AssetState.DOWNLOADED).distinct())
        if asset_ids is not None:
            query = select(Asset.clip_pk).where(col(Asset.id).in_(list(asset_ids))).distinct()
        with self.session() as s:
            clip_pks = list(s.exec(query))
            work = []
            for part in chunks(clip_pks):
                rows = s.exec(select(Clip, Task).join(Task, col(Task.id) == Clip.task_pk)
                              .where(col(Clip.id).in_(part)).order_by(Clip.id))
                pairs = list(rows)
                assets: dict[int, list[Asset]] = {}
                for asset in s.exec(select(Asset).where(col(Asset.clip_pk).in_(part))):
                    assets.setdefault(asset.clip_pk, []).append(asset)
                work.extend((clip, task, assets.get(clip.id or 0, [])) for clip, task in pairs)
            return work

    def asset_url(self, asset_id: int) -> str | None:
        with self.session() as s:
            asset = s.get(Asset, asset_id)
            return asset.url if asset else None

    def asset_done(self, asset_id: int, *, path: str, size: int, sha256: str, tagged: bool,
                   warning: str | None = None, transfer: bool = True) -> bool:
        """Record a file as archived: call only once it is complete at its final path. False when
        not recorded: a fleet worker's claim on it was lost (`assets_done`).

        `transfer` is False for a rewrite in place (retag), which is not a download attempt.
        """
        return not self.assets_done([(asset_id, path, size, sha256, tagged, warning)], transfer=transfer)

    def assets_done(self, files: Sequence[tuple[int, str, int, str, bool, str | None]], *,
                    transfer: bool = True) -> dict[int, str | None]:
        """`asset_done` for many files in one transaction: (id, path, size, sha256, tagged, warning).

        A fleet worker records only the files it still claims, checked in this transaction: the
        others are returned, not recorded, each with the path the catalog records it at (None
        while it is not archived), see claims.Fleet.lost_files.
        """
        if not files:
            return {}
        now = utcnow()
        with self.session() as s:
            conn = s.connection()
            lost = {} if self.fleet is None else self.fleet.lost_files(conn, [f[0] for f in files])
            rows = [{"id": asset_id, "path": path, "size": size, "sha256": sha256, "tagged": tagged,
                     "warning": warning, "now": now, "transfer": int(transfer)}
                    for asset_id, path, size, sha256, tagged, warning in files if asset_id not in lost]
            if rows:
                conn.execute(_ASSET_DONE, rows)
        return lost

    def record_file(self, source: str, clip_id: str, kind: str, *, path: str, size: int, sha256: str,
                    url: str | None, tagged: bool) -> None:
        """Record a file found in place (rebuild): the asset row is created if needed."""
        now = utcnow()
        with self.session() as s:
            clip = s.exec(select(Clip).where(Clip.source == source, Clip.clip_id == clip_id)).first()
            if clip is None or clip.id is None:
                return
            asset = s.exec(select(Asset).where(Asset.clip_pk == clip.id, Asset.kind == kind)).first()
            if asset is None:
                asset = Asset(clip_pk=clip.id, kind=kind, url=url, created_at=now)
                s.add(asset)
            asset.path, asset.size, asset.sha256, asset.tagged = path, size, sha256, tagged
            asset.state, asset.updated_at, asset.downloaded_at = AssetState.DOWNLOADED, now, now

    def asset_failed(self, asset_id: int, error: str) -> bool:
        """Record a failed attempt; False when not recorded (a fleet worker's lost claim, see `assets_done`)."""
        with self.session() as s:
            if self.fleet is not None and self.fleet.lost_files(s.connection(), [asset_id]):
                return False
            asset = s.get(Asset, asset_id)
            if asset is None:
                return False
            asset.state, asset.last_error = AssetState.FAILED, error
            asset.attempts += 1
            # a fleet's failures are timed on the server's clock, in this transaction (see Fleet.claim_clips)
            asset.updated_at = utcnow() if self.fleet is None else self.fleet.server_now(s.connection())
        return True

    # --- sync runs -----------------------------------------------------------------------

    def start_run(self, now: datetime | None = None) -> int:
        with self.session() as s:
            run = SyncRun(started_at=now or utcnow())
            s.add(run)
            s.flush()
            assert run.id is not None
            return run.id

    def finish_run(self, run_id: int, **values: Any) -> None:
        with self.session() as s:
            run = s.get(SyncRun, run_id)
            if run is None:
                return
            for key, value in values.items():
                setattr(run, key, value)
            run.finished_at = utcnow()

    def execute(self, sql: str, **params: Any) -> list[Any]:
        with self.session() as s:
            return list(s.connection().execute(text(sql), params))


def _storable_ids(record: TaskRecord) -> TaskRecord:
    """PostgreSQL text holds no NUL (the engine writes U+FFFD instead, database.py): a task or
    clip id a provider sent with one is matched and stored in that spelling, so its row is found again."""
    if "\x00" not in record.task_id and not any("\x00" in clip.clip_id for clip in record.clips):
        return record
    clips = tuple(replace(c, clip_id=as_stored(c.clip_id)) for c in record.clips)
    return replace(record, task_id=as_stored(record.task_id), clips=clips)


def _apply(conn: Connection, records: Sequence[TaskRecord], now: datetime, result: ApplyResult, *,
           defer: str | None = None) -> dict[str, Batch]:
    """Store `records` source by source; the batch of source `defer` holds its task rows back
    for `Store._schedule` to write with their schedule (see upsert)."""
    by_source: dict[str, list[TaskRecord]] = {}
    for record in records:
        by_source.setdefault(record.source, []).append(record)
    batches = {source: Batch(conn, source, now, result, defer=source == defer) for source in by_source}
    for source, group in by_source.items():
        batches[source].apply(group)
    return batches


def _unfinished(sources: Sequence[str] | None) -> Any:
    clause = col(Task.status).not_in([s.value for s in TERMINAL])
    if sources is not None:
        clause = clause & col(Task.source).in_(list(sources))
    return clause
