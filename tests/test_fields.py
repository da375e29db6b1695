"""The clip-field table against what stays written out: ClipRecord, the models, the migration SQL.

And what is derived from it, exercised for real: the normalizers' aliases, the store's upserts,
the path-template fields, the query language and the listings; run counters; poll outcomes.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Float, String, Text
from sqlmodel.sql.sqltypes import AutoString

from archiver.fields import (CLIP_TABLE, RUN_COUNTERS, STORED_FIELDS, URL_FIELDS, AssetKind, AssetState,
                             RunCounters, duration, text, timestamp)
from archiver.library import CLIP_COLUMNS, list_clips
from archiver.models import Clip, SyncRun, UTCDateTime
from archiver.paths import TEMPLATE_FIELDS, clip_fields, render_relpath
from archiver.records import ClipRecord, PollOutcome, Status, TaskRecord, clip_from
from archiver.store import Store
from archiver.sync import SyncReport

# Which column types hold what each parser returns.
_COLUMN_TYPES: dict[Any, tuple[type, ...]] = {text: (String, Text, AutoString), duration: (Float,), timestamp: (UTCDateTime,)}
_T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Store(f"sqlite:///{tmp_path / 'lib.db'}") as s:
        yield s


def _sample(field: Any, n: int = 0) -> Any:
    """A raw value for `field` and the value its parser makes of it."""
    if field.parse is duration:
        return str(100 + n), float(100 + n)
    if field.parse is timestamp:
        value = _T0 + timedelta(days=n)
        return value.isoformat(), value
    return f"{field.name}-value-{n}", f"{field.name}-value-{n}"


# --- the table against what stays written out ---------------------------------------------------


def test_every_field_is_a_clip_record_attribute_and_nothing_else_is() -> None:
    names = [f.name for f in dataclasses.fields(ClipRecord)]
    assert set(names) - {"raw", "warnings"} == {f.name for f in CLIP_TABLE}


@pytest.mark.parametrize("field", CLIP_TABLE, ids=lambda f: f.name)
def test_every_field_is_a_clips_column_of_a_compatible_type(field: Any) -> None:
    column = Clip.__table__.columns[field.name]  # type: ignore[attr-defined]
    assert isinstance(column.type, _COLUMN_TYPES[field.parse]), (field.name, column.type)
    assert column.nullable or field.name == "clip_id"  # a parser may say None: the column takes it


def test_the_tracks_view_and_the_listing_expose_every_listed_field(store: Store) -> None:
    view = {row[1] for row in store.execute("PRAGMA table_info(tracks)")}
    listed = {f.name for f in CLIP_TABLE if f.listed}
    assert listed <= view, listed - view
    assert listed <= set(CLIP_COLUMNS)
    assert {"source", "task_id", "status", "audio_path", "image_path"} <= view & set(CLIP_COLUMNS)


def test_url_fields_name_every_asset_kind_once() -> None:
    assert set(URL_FIELDS) == set(AssetKind)
    assert all(name == f"{kind.value}_url" for kind, name in URL_FIELDS.items())


def test_run_counters_are_the_sync_runs_counter_columns_and_the_report_has_them() -> None:
    columns = set(SyncRun.__table__.columns.keys())  # type: ignore[attr-defined]
    assert columns == {"id", "started_at", "finished_at", "exit_code", "errors", "error_text", *RUN_COUNTERS}
    assert issubclass(SyncReport, RunCounters)
    report = SyncReport(**{name: i + 1 for i, name in enumerate(RUN_COUNTERS)})
    assert report.counts() == {name: i + 1 for i, name in enumerate(RUN_COUNTERS)}


def test_finish_run_stores_every_run_counter(store: Store) -> None:
    run = store.start_run()
    counts = {name: 10 + i for i, name in enumerate(RUN_COUNTERS)}
    store.finish_run(run, exit_code=0, errors=0, error_text=None, **counts)
    row = store.execute(f"SELECT {', '.join(RUN_COUNTERS)} FROM sync_runs WHERE id = :id", id=run)[0]
    assert dict(zip(RUN_COUNTERS, row)) == counts


# --- derived: normalizer aliases ----------------------------------------------------------------


@pytest.mark.parametrize("field", [f for f in CLIP_TABLE if f.name != "clip_id"], ids=lambda f: f.name)
def test_every_alias_of_a_field_is_read_by_clip_from(field: Any) -> None:
    raw, parsed = _sample(field)
    for alias in field.aliases:
        obj = {"clip_id": "c1", alias: raw} if alias not in ("id",) else {alias: raw}
        clip = clip_from(obj)
        assert clip is not None and getattr(clip, field.name) == parsed, (field.name, alias)


@pytest.mark.parametrize("field", [f for f in CLIP_TABLE if len(f.aliases) > 1], ids=lambda f: f.name)
def test_the_first_alias_present_wins(field: Any) -> None:
    (first, parsed), (second, _) = _sample(field, 1), _sample(field, 2)
    obj = {"clip_id": "c1", field.aliases[0]: first, field.aliases[-1]: second}
    if field.name == "clip_id":
        assert clip_from(obj).clip_id == first  # type: ignore[union-attr]
    else:
        assert getattr(clip_from(obj), field.name) == parsed


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from([a for f in CLIP_TABLE for a in f.aliases]),
                       st.one_of(st.none(), st.text(max_size=20), st.integers(), st.floats())))
def test_clip_from_parses_each_field_with_its_parser(obj: dict[str, Any]) -> None:
    clip = clip_from(obj)
    if clip is None:
        return
    for field in CLIP_TABLE[1:]:
        raw = next((obj[a] for a in field.aliases if obj.get(a) not in (None, "")), None)
        assert getattr(clip, field.name) == field.parse(raw), field.name


# --- derived: store upserts ---------------------------------------------------------------------


def _record(**clip: Any) -> TaskRecord:
    return TaskRecord(source="suno", task_id="t1", status=Status.SUCCEEDED, clips=(ClipRecord(clip_id="c1", **clip),))


def test_the_store_upserts_every_stored_field_and_keeps_sticky_ones(store: Store) -> None:
    values = {f.name: _sample(f)[1] for f in CLIP_TABLE if f.name != "clip_id"}
    store.apply([_record(**values)])
    row = store.execute(f"SELECT {', '.join(STORED_FIELDS)} FROM clips WHERE clip_id = 'c1'")[0]
    for name, stored in zip(STORED_FIELDS, row):
        expected = values[name]
        if isinstance(expected, datetime):
            stored = UTCDateTime().process_result_value(stored, None)
        assert stored == expected, name
    store.apply([_record()])  # a sparser payload: only non-sticky fields are cleared
    row = store.execute(f"SELECT {', '.join(STORED_FIELDS)} FROM clips WHERE clip_id = 'c1'")[0]
    sticky = {f.name: f.sticky for f in CLIP_TABLE}
    assert {n for n, v in zip(STORED_FIELDS, row) if v is None} == {n for n in STORED_FIELDS if not sticky[n]}


def test_asset_rows_hold_the_enum_values(store: Store) -> None:
    store.apply([_record(audio_url="http://127.0.0.1/a.mp3", image_url="http://127.0.0.1/a.jpg")])
    rows = store.execute("SELECT id, kind, state FROM assets ORDER BY kind")
    assert [(kind, state) for _, kind, state in rows] == [("audio", "pending"), ("image", "pending")]
    assert {kind for _, kind, _ in rows} <= {k.value for k in AssetKind}
    store.asset_done(rows[0][0], path="a.mp3", size=1, sha256="0" * 64, tagged=False)
    store.asset_failed(rows[1][0], "boom")
    states = dict(store.execute("SELECT kind, state FROM assets"))
    assert states == {AssetKind.AUDIO.value: AssetState.DOWNLOADED.value, AssetKind.IMAGE.value: AssetState.FAILED.value}


# --- derived: template fields, query language, listings -----------------------------------------


def test_template_fields_are_the_table_template_names_plus_the_context() -> None:
    names = {f.template for f in CLIP_TABLE if f.template}
    assert TEMPLATE_FIELDS == names | {"source", "task_id", "style", "ext"}


@pytest.mark.parametrize("field", [f for f in CLIP_TABLE if f.template], ids=lambda f: f.name)
def test_every_template_field_renders_the_clip_value(field: Any) -> None:
    _, value = _sample(field, 3)
    clip = ClipRecord(**{"clip_id": "c1", field.name: value})
    rel = render_relpath(f"{{{field.template}}}", clip_fields(clip, source="suno", task_id="t1"), "mp3")
    shown = value.strftime("%Y-%m-%d") if isinstance(value, datetime) else format(value)
    assert rel.name == f"{shown}.mp3"


@pytest.mark.parametrize("field", [f for f in CLIP_TABLE if f.query], ids=lambda f: f.name)
def test_every_queryable_field_selects_by_its_query_name(store: Store, field: Any) -> None:
    _, mine = _sample(field, 1)
    _, other = _sample(field, 40)
    store.apply([TaskRecord(source="suno", task_id="t1", status=Status.SUCCEEDED,
                            clips=(ClipRecord(clip_id="mine-1", **({} if field.name == "clip_id" else {field.name: mine})),
                                   ClipRecord(clip_id="other-2", **({} if field.name == "clip_id" else {field.name: other}))))])
    value = {"text": lambda: mine, "id": lambda: "mine", "number": lambda: str(int(mine)),
             "date": lambda: mine.strftime("%Y-%m-%d")}[field.query]()
    name = field.query_name or field.name
    assert [r["clip_id"] for r in list_clips(store, [f"{name}:{value}"])] == ["mine-1"]
    assert [r["clip_id"] for r in list_clips(store, [f"^{name}:{value}"])] == ["other-2"]


def test_listing_rows_carry_every_listed_field(store: Store) -> None:
    values = {f.name: _sample(f)[1] for f in CLIP_TABLE if f.listed and f.name != "clip_id"}
    store.apply([_record(**values)])
    row = list_clips(store)[0]
    assert tuple(row) == CLIP_COLUMNS
    for name, value in values.items():
        shown = value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value
        assert row[name] == shown, name


# --- poll outcomes ------------------------------------------------------------------------------


def test_schedule_reads_each_kind_of_poll_outcome(store: Store) -> None:
    store.add_tasks("suno", ["ok", "err", "gone"], now=_T0)
    outcomes = {"ok": PollOutcome.ok(), "err": PollOutcome.error("HTTP 500 from suno"),
                "gone": PollOutcome.not_found("suno: task gone not found")}
    given_up = store.schedule("suno", outcomes, 60, 3600, _T0, changed=set(), not_found_polls=1,
                              not_found_after=timedelta(0))
    assert given_up == {"gone"}
    rows = {r[0]: r[1:] for r in store.execute("SELECT task_id, poll_errors, error, status, not_found_since FROM tasks")}
    assert rows["ok"][:3] == (0, None, "pending") and rows["ok"][3] is None
    assert rows["err"][:3] == (1, "HTTP 500 from suno", "pending") and rows["err"][3] is None
    assert rows["gone"][:3] == (1, "suno: task gone not found", "failed") and rows["gone"][3] is not None


def test_poll_outcome_is_a_value() -> None:
    assert PollOutcome.error("x") == PollOutcome.error("x") != PollOutcome.not_found("x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        PollOutcome.ok().message = "y"  # type: ignore[misc]
