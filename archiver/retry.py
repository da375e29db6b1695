"""`archiver retry`: put failed tasks back in the queue, chosen with the `ls` query language.

A failed task may have no clips (it was never found), so the query runs over every task joined
with its clips, where a task without clips stands as one clip-less row that still carries its
source: `source:acedata`, `task:7f11` and `status:failed` select it; clip fields do not.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text

from .fields import CLIP_TABLE, AssetKind, AssetState
from .query import compile_query, register_functions
from .records import Status
from .store import Store

# The clip columns the query language can name (clip_id among them).
_QUERIED = [row.name for row in CLIP_TABLE if row.query is not None and row.name != "clip_id"]

# c is every clip, plus one empty row (id NULL) per task that has none; query.py's columns
# refer to the aliases c, t and au.
_FROM = f"""
    FROM tasks t
    JOIN (SELECT id, source, clip_id, task_pk, {", ".join(_QUERIED)}
          FROM clips
          UNION ALL
          SELECT NULL, source, NULL, id, {", ".join("NULL" for _ in _QUERIED)}
          FROM tasks WHERE NOT EXISTS (SELECT 1 FROM clips WHERE clips.task_pk = tasks.id)) c
      ON c.task_pk = t.id
    LEFT JOIN assets au ON au.clip_pk = c.id AND au.kind = '{AssetKind.AUDIO.value}'
      AND au.state = '{AssetState.DOWNLOADED.value}'"""


def failed_tasks(store: Store, terms: Sequence[str] = ()) -> list[tuple[int, str, str]]:
    """(pk, source, task_id) of the failed tasks matching every term, in a stable order."""
    compiled = compile_query(terms, dialect=store.dialect)
    where = "t.status = :failed_status" + (f" AND ({compiled.where})" if compiled.where else "")
    sql = f"SELECT DISTINCT t.id, t.source, t.task_id {_FROM} WHERE {where} ORDER BY t.source, t.task_id"
    with store.connect() as conn:
        if store.dialect == "sqlite":
            register_functions(conn.connection.driver_connection)
        rows = conn.execute(text(sql), {**compiled.params, "failed_status": Status.FAILED.value})
        return [(pk, source, task_id) for pk, source, task_id in rows]


def retry_failed(store: Store, terms: Sequence[str] = ()) -> list[tuple[int, str, str]]:
    """Queue the matching failed tasks again (due now, counters reset); returns them."""
    chosen = failed_tasks(store, terms)
    store.requeue([pk for pk, _source, _task_id in chosen])
    return chosen
