"""Storing a batch of polled records: bulk statements in the caller's transaction, rows as plain dicts.

A poll pass stores thousands of tasks at once. Rows are read with Core selects, compared in
Python and written back with one driver-level executemany per kind of change; loading them as ORM
objects and flushing them cost 2-4 times as much (10,000 tasks, store only: a running pass
~100 -> ~55 µs a task, a first answer with two clips ~1100 -> ~250 µs). A clip's update writes
only the columns that changed, so the full-text triggers on title, lyrics and tags fire only when
one of those did.

A poll pass also reschedules every task it asked about. SQLite rewrites a whole row, its raw JSON
and all, for any change, so a task the pass both answered and rescheduled is written once: the
batch holds its new values back (`defer`) and `schedule` writes them with its schedule.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.engine import Connection

from .fields import STORED_FIELDS, URL_FIELDS, AssetState
from .models import TASK_VALUES, Asset, Clip, Task, UTCDateTime, dumps, is_stale, update_clip, update_task
from .records import Status, TaskRecord

CHUNK = 500  # ids per IN (...) query, well under SQLite's variable limit

TASKS: Table = Task.__table__  # type: ignore[attr-defined]
CLIPS: Table = Clip.__table__  # type: ignore[attr-defined]
ASSETS: Table = Asset.__table__  # type: ignore[attr-defined]

_TASK_WRITTEN = (*TASK_VALUES, "raw_json", "last_polled", "updated_at")
_NEW_TASK = (*_TASK_WRITTEN, "source", "task_id", "first_seen", "next_poll_at", "polls", "idle_polls", "poll_errors")
_NEW_CLIP = ("source", "clip_id", "task_pk", "first_seen", "updated_at", "raw_json", *STORED_FIELDS)
_NEW_ASSET = ("clip_pk", "kind", "url", "created_at", "updated_at", "path", "size", "sha256", "state", "attempts",
              "last_error", "warning", "tagged", "downloaded_at")
_ASSET_BLANK = {"path": None, "size": None, "sha256": None, "state": AssetState.PENDING.value, "attempts": 0,
                "last_error": None, "warning": None, "tagged": False, "downloaded_at": None}


# The schedule of a polled task (store.Store.schedule); the second form also writes the values
# a deferring batch held back for it (an answered task: not failed, its status the answer's).
_SCHEDULE_SET = ("polls = polls + 1, last_polled = :now, idle_polls = :idle_polls, poll_errors = :poll_errors, "
                 "next_poll_at = :next_poll_at, not_found_since = :not_found_since")
SCHEDULE = (
    f"UPDATE tasks SET {_SCHEDULE_SET}, "
    "error = CASE WHEN :failed THEN :error ELSE error END, "
    "updated_at = CASE WHEN :failed THEN :now ELSE updated_at END, "
    "status = COALESCE(:status, status), provider_status = COALESCE(:provider_status, provider_status) "
    "WHERE id = :id"
)
_ANSWERED = (*TASK_VALUES, "raw_json", "updated_at")
_SCHEDULE_ANSWERED = (f"UPDATE tasks SET {', '.join(f'{n} = :{n}' for n in _ANSWERED)}, {_SCHEDULE_SET} "
                      "WHERE id = :id")
_SCHEDULE_KEYS = ("id", "now", "idle_polls", "poll_errors", "next_poll_at", "not_found_since")


def _insert(table: Table, names: Sequence[str]) -> str:
    return f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})"


def _update(table: Table, names: Iterable[str]) -> str:
    return f"UPDATE {table.name} SET {', '.join(f'{n} = :{n}' for n in names)} WHERE id = :pk"


_stamp = UTCDateTime().process_bind_param


def _time_text(value: datetime) -> str | None:
    """A time as UTCDateTime writes it; most of a batch's times are its one `now`, spelled once."""
    return _spelled(value, value.utcoffset())  # equal times of one zone may differ in offset (fold)


@functools.lru_cache(maxsize=1024)
def _spelled(value: datetime, offset: object) -> str | None:
    return _stamp(value, None)


def _values(row: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """A row's values as the database stores them (times as the text UTCDateTime writes)."""
    return {name: _time_text(value) if isinstance(value, datetime) else value
            for name in names for value in (row[name],)}


def run_many(conn: Connection, sql: str, params: Any) -> int:
    """A driver-level statement written with `:name` placeholders, on SQLite or psycopg; the
    number of rows it changed.

    SQLAlchemy's own statement layer would convert them but costs per row what this saves.
    """
    if conn.dialect.name == "postgresql":
        from .pgdb import pyformat

        sql = pyformat(sql)
    return int(conn.exec_driver_sql(sql, params).rowcount)


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass
class ApplyResult:
    tasks_added: int = 0
    tasks_updated: int = 0
    clips_added: int = 0
    clips_updated: int = 0
    stale: int = 0
    newly_succeeded: int = 0
    newly_failed: int = 0
    changed_task_ids: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def clip_created(clip: dict[str, Any], task: dict[str, Any]) -> datetime | None:
    """A clip's creation time when its payload has none: its task's, else when the task ended or it was seen."""
    return task["created_at"] or task["finished_at"] or clip["first_seen"]


class Batch:
    """The records of one source, stored in the caller's transaction."""

    def __init__(self, conn: Connection, source: str, now: datetime, result: ApplyResult, *,
                 defer: bool = False) -> None:
        self.conn, self.source, self.now, self.result = conn, source, now, result
        self.defer = defer
        self.held: dict[int, dict[str, Any]] = {}  # task pk -> an answer's columns, when deferred
        self.held_stale: dict[int, dict[str, Any]] = {}  # task pk -> a stale answer's poll time, when deferred
        self.tasks: dict[str, dict[str, Any]] = {}  # task_id -> row
        self.clips: dict[str, dict[str, Any]] = {}  # clip_id -> row
        self.assets: dict[tuple[int, str], dict[str, Any]] = {}

    def apply(self, records: Sequence[TaskRecord]) -> None:
        self._load(records)
        fresh = self._tasks(records)
        touched = self._clips(fresh)
        self._assets(touched)

    def _load(self, records: Sequence[TaskRecord]) -> None:
        columns = [TASKS.c[name] for name in ("id", "task_id", *TASK_VALUES, "updated_at", "idle_polls", "poll_errors",
                                              "not_found_since")]
        for part in chunks([r.task_id for r in records]):
            query = select(*columns).where(TASKS.c.source == self.source, TASKS.c.task_id.in_(part))
            names = list(query.selected_columns.keys())
            self.tasks.update((row[1], dict(zip(names, row))) for row in self.conn.execute(query))
        columns = [CLIPS.c[name] for name in ("id", "clip_id", "task_pk", *STORED_FIELDS, "raw_json", "first_seen")]
        for part in chunks([c.clip_id for r in records for c in r.clips]):
            query = select(*columns).where(CLIPS.c.source == self.source, CLIPS.c.clip_id.in_(part))
            names = list(query.selected_columns.keys())
            self.clips.update((row[1], dict(zip(names, row))) for row in self.conn.execute(query))
        columns = [ASSETS.c.id, ASSETS.c.clip_pk, ASSETS.c.kind, ASSETS.c.url, ASSETS.c.state]
        for part in chunks([c["id"] for c in self.clips.values()]):
            for row in self.conn.execute(select(*columns).where(ASSETS.c.clip_pk.in_(part))):
                self.assets[(row.clip_pk, row.kind)] = dict(row._mapping)

    def _tasks(self, records: Sequence[TaskRecord]) -> list[TaskRecord]:
        """Tasks first: new ones get their ids, so that their clips can point at them."""
        result, now = self.result, self.now
        fresh: list[TaskRecord] = []
        written: dict[str, dict[str, Any]] = {}
        stale: dict[int, dict[str, Any]] = {}
        for record in records:
            row = self.tasks.get(record.task_id)
            if row is None:
                row = {"id": None, "task_id": record.task_id, "status": Status.PENDING.value, "updated_at": None,
                       "idle_polls": 0, "poll_errors": 0, "not_found_since": None}
                row.update(dict.fromkeys(TASK_VALUES[1:]))
                self.tasks[record.task_id] = row
                result.tasks_added += 1
                was = None
            elif is_stale(row, record):
                if row["id"] is not None:
                    stale[row["id"]] = {"pk": row["id"], "last_polled": _time_text(now)}
                row["last_polled"] = now
                result.stale += 1
                continue
            else:
                was = row["status"]
            changed = update_task(row, record)
            if changed and was is not None:
                result.tasks_updated += 1
            if record.status.value != was:
                result.newly_succeeded += record.status is Status.SUCCEEDED
                result.newly_failed += record.status is Status.FAILED
            row["raw_json"] = dumps(record.raw)
            row["last_polled"] = now
            if changed:
                row["updated_at"] = now
                result.changed_task_ids.append(record.task_id)
            written[record.task_id] = row
            fresh.append(record)
        new = [row for row in written.values() if row["id"] is None]
        old = [{"pk": row["id"]} | _values(row, _TASK_WRITTEN) for row in written.values() if row["id"] is not None]
        if new:
            extra = {"source": self.source, "first_seen": now, "next_poll_at": now, "polls": 0, "idle_polls": 0,
                     "poll_errors": 0}
            run_many(self.conn, _insert(TASKS, _NEW_TASK), [_values(row | extra, _NEW_TASK) for row in new])
            self._ids(TASKS, TASKS.c.task_id, self.tasks, [row["task_id"] for row in new])
        if self.defer:
            self.held_stale.update(stale)
            self.held.update((row["pk"], row) for row in old)
        else:
            self._write(old, list(stale.values()))
        return fresh

    def _write(self, answered: list[dict[str, Any]], stale: list[dict[str, Any]]) -> None:
        if answered:
            run_many(self.conn, _update(TASKS, _TASK_WRITTEN), answered)
        if stale:
            run_many(self.conn, _update(TASKS, ["last_polled"]), stale)

    def polled(self, task_id: str) -> tuple[int, int, int, datetime | None] | None:
        """(pk, idle_polls, poll_errors, not_found_since) of a task this batch stored, as the
        database holds them; None for one it did not."""
        row = self.tasks.get(task_id)
        if row is None or row["id"] is None:
            return None
        return row["id"], row["idle_polls"], row["poll_errors"], row["not_found_since"]

    def schedule(self, updates: list[dict[str, Any]]) -> None:
        """Write the schedule `updates` (store.Store.schedule) and what this batch held back: an
        answered task's values and its schedule in one UPDATE; anything else (an answer beside a
        failed outcome, one without an outcome) first as `apply` writes it, then its schedule. A
        stale answer's held value (its poll time) is one the schedule sets too."""
        held, self.held = self.held, {}
        stale, self.held_stale = self.held_stale, {}
        together: list[dict[str, Any]] = []
        alone: list[dict[str, Any]] = []
        for update in updates:
            stale.pop(update["id"], None)  # its poll time: the schedule sets it too
            values = held.get(update["id"])
            if values is not None and not update["failed"] and update["status"] is None:
                del held[update["id"]]
                together.append({key: update[key] for key in _SCHEDULE_KEYS}
                                | {name: values[name] for name in _ANSWERED})
            else:
                alone.append(update)
        self._write(list(held.values()), list(stale.values()))  # before their schedule, as `apply` then `schedule`
        if together:
            run_many(self.conn, _SCHEDULE_ANSWERED, together)
        if alone:
            run_many(self.conn, SCHEDULE, alone)

    def _clips(self, fresh: list[TaskRecord]) -> list[dict[str, Any]]:
        result, now = self.result, self.now
        touched: list[dict[str, Any]] = []
        new: list[dict[str, Any]] = []
        dirty: dict[int, set[str]] = {}  # clip pk -> changed columns
        owners = {row["id"]: task_id for task_id, row in self.tasks.items()}
        for record in fresh:
            task = self.tasks[record.task_id]
            listed: set[str] = set()
            for clip_record in record.clips:
                if clip_record.clip_id in listed:  # the last copy is stored, as every later answer is
                    result.warnings.append(f"{self.source}: clip {clip_record.clip_id} is listed more than once "
                                           f"in task {record.task_id}'s answer; the last copy is kept")
                listed.add(clip_record.clip_id)
                clip = self.clips.get(clip_record.clip_id)
                if clip is not None and clip["task_pk"] != task["id"]:
                    result.warnings.append(self._other_owner(clip, record.task_id, owners))
                    continue
                if clip is None:
                    clip = {"id": None, "clip_id": clip_record.clip_id, "task_pk": task["id"], "first_seen": now,
                            "raw_json": None, **dict.fromkeys(STORED_FIELDS)}
                    update_clip(clip, clip_record)
                    clip["updated_at"] = now
                    self.clips[clip_record.clip_id] = clip
                    new.append(clip)
                    result.clips_added += 1
                    changed: set[str] = set()
                else:
                    changed = update_clip(clip, clip_record)
                    if changed:
                        clip["updated_at"] = now
                        changed.add("updated_at")
                        result.clips_updated += 1
                raw = dumps(clip_record.raw)
                if clip["raw_json"] != raw:
                    clip["raw_json"] = raw
                    changed.add("raw_json")
                if clip["created_at"] is None:
                    clip["created_at"] = clip_created(clip, task)
                    changed.add("created_at")
                if clip["id"] is not None and changed:
                    dirty.setdefault(clip["id"], set()).update(changed)
                touched.append(clip)
        if new:
            source = {"source": self.source}
            run_many(self.conn, _insert(CLIPS, _NEW_CLIP), [_values(clip | source, _NEW_CLIP) for clip in new])
            self._ids(CLIPS, CLIPS.c.clip_id, self.clips, [clip["clip_id"] for clip in new])
        groups: dict[frozenset[str], list[dict[str, Any]]] = {}
        by_pk = {clip["id"]: clip for clip in self.clips.values()} if dirty else {}
        for pk, names in dirty.items():
            clip = by_pk[pk]
            groups.setdefault(frozenset(names), []).append({"pk": pk} | _values(clip, names))
        for names, rows in groups.items():  # one executemany per set of changed columns
            run_many(self.conn, _update(CLIPS, sorted(names)), rows)
        return touched

    def _ids(self, table: Table, key: Any, rows: dict[str, dict[str, Any]], keys: list[str]) -> None:
        """The ids SQLite gave the rows just inserted."""
        for part in chunks(keys):
            query = select(key, table.c.id).where(table.c.source == self.source, key.in_(part))
            for name, pk in self.conn.execute(query):
                rows[name]["id"] = pk

    def _other_owner(self, clip: dict[str, Any], task_id: str, owners: dict[Any, str]) -> str:
        """The warning for a clip id that a second task of the same source also lists."""
        owner = owners.get(clip["task_pk"])
        if owner is None:
            owner = self.conn.execute(select(TASKS.c.task_id).where(TASKS.c.id == clip["task_pk"])).scalar() or "?"
        return (f"{self.source}: clip {clip['clip_id']} of task {task_id} is already recorded under task "
                f"{owner}; kept there")

    def _assets(self, touched: list[dict[str, Any]]) -> None:
        """An asset row per URL; a fresh link (CDN URLs are re-signed on each poll) re-queues a failed file."""
        now = self.now
        new: list[dict[str, Any]] = []
        changed: dict[int, dict[str, Any]] = {}
        for clip in touched:
            for kind, url_field in URL_FIELDS.items():
                url = clip[url_field]
                if not url:
                    continue
                key = (clip["id"], kind.value)
                asset = self.assets.get(key)
                if asset is None:
                    asset = {"id": None, "clip_pk": clip["id"], "kind": kind.value, "url": url,
                             "created_at": now, "updated_at": now} | _ASSET_BLANK
                    self.assets[key] = asset
                    new.append(asset)
                elif asset["url"] != url:
                    asset["url"] = url
                    asset["updated_at"] = now
                    if asset["state"] == AssetState.FAILED:
                        asset["state"] = AssetState.PENDING.value
                    if asset["id"] is not None:
                        changed[asset["id"]] = asset
        if new:
            run_many(self.conn, _insert(ASSETS, _NEW_ASSET), [_values(a, _NEW_ASSET) for a in new])
        if changed:
            names = ("url", "updated_at", "state")
            run_many(self.conn, _update(ASSETS, names), [{"pk": pk} | _values(a, names)
                                                               for pk, a in changed.items()])
