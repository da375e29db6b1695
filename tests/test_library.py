"""Browsing the library: `ls` queries, sorting and formats, `search`, `show`, `stats`, `export`.

One seeded library of a few hundred clips (all five sources, varied fields, some tasks failed or
running, some audio on disk) is built once per module and copied for every test. Expected
results are computed independently in Python from the records that were inserted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event, text

from archiver.library import CLIP_COLUMNS, count_clips, list_clips, search
from archiver.query import prefix_bounds
from archiver.records import ClipRecord, Status, TaskRecord
from archiver.store import Store

SOURCES = ("ccapi-suno", "ccapi-producer", "mountsea", "acedata", "aimusicapi")
MODELS = {"ccapi-suno": ("chirp-v4", "chirp-v3-5"), "ccapi-producer": ("FUZZ-1.1",),
          "mountsea": ("suno-v4.5", None), "acedata": ("FUZZ-2.0 Pro", "chirp-v4"), "aimusicapi": ("sonic-v3",)}
WORDS = ("neon", "harbor", "velvet", "ember", "midnight", "paper", "glass", "river", "static", "orchid",
         "copper", "hollow", "saffron", "winter", "signal", "marble")
STYLES = ("synthwave", "lofi jazz", "dream pop", "drum and bass", "folk", "trap", "ambient", "city pop")
START = datetime(2025, 1, 1, tzinfo=timezone.utc)
NOW = datetime(2027, 1, 2, tzinfo=timezone.utc)


@dataclass
class Expected:
    source: str
    task_id: str
    clip_id: str
    status: str
    title: str | None
    tags: str | None
    lyrics: str | None
    duration: float | None
    model: str | None
    created_at: datetime
    audio_path: str | None = None
    size: int = 0


def _has(value: str | None, needle: str) -> bool:
    return value is not None and needle.casefold() in value.casefold()


def _bare(clip: Expected, word: str) -> bool:
    return _has(clip.title, word) or _has(clip.tags, word) or _has(clip.lyrics, word)


def _sql(store: Store, sql: str, **params: Any) -> None:
    """A write the way a sync's download step records it: one UPDATE on the assets table."""
    with store.engine.begin() as conn:
        assert conn.execute(text(sql), params).rowcount == 1


def _build(root: Path) -> dict[str, Any]:
    """Write the seeded library under `root`; return what was inserted."""
    rng = random.Random(20260313)
    records: list[TaskRecord] = []
    clips: list[Expected] = []
    statuses = {}
    for n in range(160):
        source = SOURCES[n % len(SOURCES)]
        task_id = f"t{n:03d}-{rng.getrandbits(32):08x}"
        created = START + timedelta(days=rng.randrange(0, 730), seconds=rng.randrange(86400))
        status = Status.FAILED if n % 13 == 5 else Status.RUNNING if n % 17 == 3 else Status.SUCCEEDED
        statuses[task_id] = (source, status.value)
        task_clips = []
        for k in range(0 if status is Status.FAILED else 2):
            clip_id = f"{task_id[:4]}c{k}-{rng.getrandbits(48):012x}"
            title = " ".join(rng.sample(WORDS, 2)).title()
            if n % 9 == 0 and k == 0:
                title += " in the Rain"
            lyrics = "\n".join(" ".join(rng.sample(WORDS, 4)) for _ in range(4))
            if n % 7 == 1:
                lyrics += "\nrain on the window"
            duration = None if n % 31 == 7 else round(rng.uniform(45, 300), 2)
            model = rng.choice(MODELS[source])
            tags = rng.choice(STYLES) if n % 11 != 4 else None
            when = created + timedelta(seconds=k)
            task_clips.append(ClipRecord(clip_id=clip_id, title=title, tags=tags, lyrics=lyrics, duration=duration,
                                         model=model, created_at=when,
                                         audio_url=f"https://cdn.example/{clip_id}.mp3",
                                         image_url=f"https://cdn.example/{clip_id}.jpg"))
            clips.append(Expected(source, task_id, clip_id, status.value, title, tags, lyrics, duration, model, when))
        records.append(TaskRecord(source, task_id, status, error="boom" if status is Status.FAILED else None,
                                  created_at=created, clips=tuple(task_clips)))
    # planted clips for exact, ranking, escaping and unicode checks
    special = [
        ("acedata", "lighthouse-task", "lh-title", "Lighthouse",
         "a verse about boats by the sea and the tide, and one lighthouse far away", 200.0),
        ("acedata", "lighthouse-task", "lh-lyric", "Harbor Song",
         "a verse about boats on the bay and the tide, and one lighthouse far away", 210.0),
        ("acedata", "lighthouse-task", "lh-dense", "Keeper", "lighthouse, lighthouse, lighthouse keeper", 190.0),
        ("mountsea", "acdc-task", "acdc-clip", 'AC/DC "live"', "thunder", 240.0),
        ("mountsea", "acdc-task", "pct-clip", "100% Pure_Energy", "percent", 100.0),
        ("aimusicapi", "cafe-task", "cafe-clip", "Café ÑOÑO", "crème brûlée", 130.0),
        ("aimusicapi", "cafe-task", "dup-a1", "Twin One", "twin", 90.0),
        ("aimusicapi", "cafe-task", "dup-a2", "Twin Two", "twin", 91.0),
    ]
    by_task: dict[tuple[str, str], list[ClipRecord]] = {}
    for source, task_id, clip_id, title, lyrics, duration in special:
        when = datetime(2026, 6, 1, tzinfo=timezone.utc) + timedelta(hours=len(clips))
        by_task.setdefault((source, task_id), []).append(ClipRecord(
            clip_id=clip_id, title=title, lyrics=lyrics, duration=duration, model="special", tags="ballad",
            created_at=when, audio_url=f"https://cdn.example/{clip_id}.mp3"))
        clips.append(Expected(source, task_id, clip_id, "succeeded", title, "ballad", lyrics, duration, "special", when))
    for (source, task_id), task_clips in by_task.items():
        statuses[task_id] = (source, "succeeded")
        records.append(TaskRecord(source, task_id, Status.SUCCEEDED, created_at=START, clips=tuple(task_clips)))

    url = f"sqlite:///{root / 'archiver.db'}"
    with Store(url) as store:
        store.apply(records, now=NOW)
        # put audio on disk for every third succeeded clip (and all planted ones), like a sync would
        done = [c for i, c in enumerate(clips) if c.status == "succeeded" and (i % 3 == 0 or c.model == "special")]
        for clip in done:
            rel = f"{clip.source}/{clip.created_at:%Y}/{clip.clip_id}.mp3"
            data = f"ID3 fake audio {clip.clip_id}".encode() * (1 + len(clip.clip_id) % 5)
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
            clip.audio_path, clip.size = rel, len(data)
            _sql(store, "UPDATE assets SET path = :path, size = :size, sha256 = :sha, state = 'downloaded', "
                        "tagged = 1, attempts = 1 WHERE kind = 'audio' AND clip_pk = "
                        "(SELECT id FROM clips WHERE clip_id = :clip)",
                 path=rel, size=len(data), sha=hashlib.sha256(data).hexdigest(), clip=clip.clip_id)
        failed = [c for i, c in enumerate(clips) if c.status == "succeeded" and c.audio_path is None and i % 5 == 1]
        for clip in failed:
            _sql(store, "UPDATE assets SET state = 'failed', attempts = 3, last_error = 'HTTP 410' "
                        "WHERE kind = 'audio' AND clip_pk = (SELECT id FROM clips WHERE clip_id = :clip)",
                 clip=clip.clip_id)
    return {"clips": clips, "statuses": statuses, "failed_files": len(failed)}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("seeded")
    return root, _build(root)


@pytest.fixture(autouse=True)
def data(seeded: tuple[Path, dict[str, Any]], library: Path) -> dict[str, Any]:
    """A private copy of the seeded library in the test's `library` dir, and what it holds."""
    root, info = seeded
    shutil.copytree(root, library, dirs_exist_ok=True)
    return info


@pytest.fixture
def clips(data: dict[str, Any]) -> list[Expected]:
    return data["clips"]


def ls_json(run_cli: Callable[..., Any], *args: str) -> list[dict[str, Any]]:
    result = run_cli("ls", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def ids(rows: list[dict[str, Any]]) -> set[str]:
    return {r["clip_id"] for r in rows}


# --- ls: queries ----------------------------------------------------------------------------------


def test_ls_lists_everything_with_the_documented_keys(run_cli, clips) -> None:
    rows = ls_json(run_cli)
    assert len(rows) == len(clips) > 300
    assert set(rows[0]) == set(CLIP_COLUMNS)
    by_id = {r["clip_id"]: r for r in rows}
    lh = by_id["lh-title"]
    assert (lh["title"], lh["source"], lh["task_id"], lh["status"]) == ("Lighthouse", "acedata", "lighthouse-task", "succeeded")
    assert lh["audio_path"] == "acedata/2026/lh-title.mp3" and lh["duration"] == 200.0


def _in_range(value: float | None, low: float | None, high: float | None) -> bool:
    return value is not None and (low is None or value >= low) and (high is None or value <= high)


def _created(clip: Expected, low: datetime | None, high: datetime | None) -> bool:
    return (low is None or clip.created_at >= low) and (high is None or clip.created_at < high)


def _utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=timezone.utc)


QUERIES: list[tuple[tuple[str, ...], Callable[[Expected], bool]]] = [
    (("source:acedata",), lambda c: c.source == "acedata"),
    (("source:ccapi",), lambda c: c.source.startswith("ccapi")),
    (("model:chirp",), lambda c: _has(c.model, "chirp")),
    (("model:=chirp-v4",), lambda c: c.model == "chirp-v4"),
    (("status:running",), lambda c: c.status == "running"),
    (("title:neon",), lambda c: _has(c.title, "neon")),
    (("TITLE:NEON",), lambda c: _has(c.title, "neon")),
    (("tags:jazz",), lambda c: _has(c.tags, "jazz")),
    (("style:pop",), lambda c: _has(c.tags, "pop")),
    (("tags:=",), lambda c: c.tags is None),
    (("lyrics:window",), lambda c: _has(c.lyrics, "window")),
    (("task:t01",), lambda c: c.task_id.startswith("t01")),
    (("clip:t002c1",), lambda c: c.clip_id.startswith("t002c1")),
    (("year:2025",), lambda c: c.created_at.year == 2025),
    (("year:2025..2026",), lambda c: True),
    (("year:2026..",), lambda c: c.created_at.year >= 2026),
    (("created:2026-03..",), lambda c: c.created_at >= _utc(2026, 3, 1)),
    (("created:..2025-06",), lambda c: c.created_at < _utc(2025, 7, 1)),
    (("created:2025-02",), lambda c: _utc(2025, 2, 1) <= c.created_at < _utc(2025, 3, 1)),
    (("created:2025-02-10..2025-04-20",), lambda c: _created(c, _utc(2025, 2, 10), _utc(2025, 4, 21))),
    (("duration:120..180",), lambda c: _in_range(c.duration, 120, 180)),
    (("duration:..90",), lambda c: _in_range(c.duration, None, 90)),
    (("duration:240..",), lambda c: _in_range(c.duration, 240, None)),
    (("duration:2:00..3:00",), lambda c: _in_range(c.duration, 120, 180)),
    (("duration:200",), lambda c: c.duration is not None and 200 <= c.duration < 201),
    (("rain",), lambda c: _bare(c, "rain")),
    (("RAIN",), lambda c: _bare(c, "rain")),
    (("rain", "window"), lambda c: _bare(c, "rain") and _bare(c, "window")),
    (("^source:acedata",), lambda c: c.source != "acedata"),
    (("^rain",), lambda c: not _bare(c, "rain")),
    (("^tags:jazz",), lambda c: not _has(c.tags, "jazz")),
    (("rain", "^source:acedata", "duration:120.."), lambda c: _bare(c, "rain") and c.source != "acedata"
     and _in_range(c.duration, 120, None)),
    (("downloaded:yes",), lambda c: c.audio_path is not None),
    (("downloaded:no", "status:succeeded"), lambda c: c.audio_path is None and c.status == "succeeded"),
    (("title:100%",), lambda c: _has(c.title, "100%")),
    (("title:_",), lambda c: _has(c.title, "_")),
    (("ñoño",), lambda c: _bare(c, "ñoño")),
    (("lyrics:CRÈME",), lambda c: _has(c.lyrics, "crème")),
]


@pytest.mark.parametrize("terms,predicate", QUERIES, ids=[" ".join(q) for q, _ in QUERIES])
def test_query_forms(run_cli, clips, terms: tuple[str, ...], predicate: Callable[[Expected], bool]) -> None:
    expected = {c.clip_id for c in clips if predicate(c)}
    assert expected, f"seed data has no match for {terms}: the test would prove nothing"
    if terms != ("year:2025..2026",):
        assert len(expected) < len(clips), f"{terms} matches everything: the test would prove nothing"
    assert ids(ls_json(run_cli, *terms)) == expected


def test_old_source_option_still_filters_and_combines(run_cli, clips) -> None:
    got = ids(ls_json(run_cli, "--source", "mountsea", "--source", "acedata", "duration:..100"))
    assert got == {c.clip_id for c in clips if c.source in ("mountsea", "acedata") and _in_range(c.duration, None, 100)}


@pytest.mark.parametrize("args,needle", [
    (("colour:red",), "valid fields: clip, created"),
    (("duration:abc",), "duration:abc"),
    (("created:2026-13",), "created:2026-13"),
    (("year:26",), "year:26"),
    (("--sort", "loudness"), "cannot sort by 'loudness'"),
    (("--format", "xml"), "unknown format 'xml'"),
    (("--format", "{title} {bpm}"), "unknown template field {bpm}"),
    (("--format", "{title.upper}"), "unknown template field"),
    (("^",), "'^' must be followed"),
])
def test_bad_queries_are_usage_errors(run_cli, data, args: tuple[str, ...], needle: str) -> None:
    result = run_cli("ls", *args)
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output


# --- ls: sort and limit ---------------------------------------------------------------------------


def test_sort_descending_and_nulls_last(run_cli, clips) -> None:
    rows = ls_json(run_cli, "--sort", "duration-")
    durations = [r["duration"] for r in rows]
    known = [d for d in durations if d is not None]
    assert known == sorted(known, reverse=True)
    assert durations[len(known):] == [None] * (len(durations) - len(known)) and len(known) < len(durations)
    ascending = [r["duration"] for r in ls_json(run_cli, "--sort", "duration")]
    assert ascending[:len(known)] == sorted(known) and ascending[-1] is None


@pytest.mark.parametrize("order", ["tags", "tags-"])
def test_empty_text_sorts_last_like_missing_text(run_cli, library: Path, order: str) -> None:
    """An empty string (another tool's write, a provider's blank) is as empty as NULL for --sort."""
    con = sqlite3.connect(library / "archiver.db")
    with con:
        con.execute("UPDATE clips SET tags = '' WHERE tags IS NOT NULL AND clip_id IN "
                    "(SELECT clip_id FROM clips WHERE tags IS NOT NULL ORDER BY clip_id LIMIT 5)")
    con.close()
    tags = [r["tags"] for r in ls_json(run_cli, "--sort", order)]
    filled = [t for t in tags if t]
    assert tags[:len(filled)] == sorted(filled, key=str.casefold, reverse=order.endswith("-"))
    assert tags.count("") == 5 and None in tags and not any(tags[len(filled):])


def test_sort_by_title_is_case_insensitive(run_cli) -> None:
    titles = [r["title"] for r in ls_json(run_cli, "--sort", "title")]
    assert titles == sorted(titles, key=str.casefold)


@pytest.mark.parametrize("sort_args", [("--sort", "source,duration-"), ("--sort", "source", "--sort", "duration-")])
def test_sort_by_several_keys(run_cli, clips, sort_args: tuple[str, ...]) -> None:
    rows = ls_json(run_cli, "duration:1..", *sort_args)
    keys = [(r["source"], -r["duration"]) for r in rows]
    assert keys == sorted(keys)
    assert len({r["source"] for r in rows}) == 5


def test_sort_by_created_and_limit(run_cli, clips) -> None:
    newest = ls_json(run_cli, "--sort", "created-", "--limit", "7")
    expected = sorted(clips, key=lambda c: c.created_at, reverse=True)[:7]
    assert [r["clip_id"] for r in newest] == [c.clip_id for c in expected]
    assert ls_json(run_cli, "--limit", "0") == []
    assert len(ls_json(run_cli, "source:acedata", "--limit", "3")) == 3


# --- ls: formats ----------------------------------------------------------------------------------


def test_table_is_plain_tsv_when_piped(run_cli, clips) -> None:
    lines = run_cli("ls", "source:mountsea").output.splitlines()
    assert lines[0].split("\t") == ["source", "clip_id", "title", "duration", "model", "status", "audio_path"]
    body = [line.split("\t") for line in lines[1:]]
    assert len(body) == sum(c.source == "mountsea" for c in clips)
    assert {row[0] for row in body} == {"mountsea"} and all(len(row) == 7 for row in body)


def test_csv_parses_with_the_csv_module(run_cli, clips) -> None:
    result = run_cli("ls", "--format", "csv", "lyrics:rain")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    expected = {c.clip_id: c for c in clips if _has(c.lyrics, "rain")}
    assert {r["clip_id"] for r in rows} == set(expected)
    assert tuple(rows[0]) == CLIP_COLUMNS
    for row in rows:  # multi-line lyrics survive the round trip
        assert row["lyrics"] == expected[row["clip_id"]].lyrics and "\n" in row["lyrics"]


def test_template_format(run_cli, clips) -> None:
    result = run_cli("ls", "source:aimusicapi", "duration:1..", "--sort", "clip",
                     "--format", "{clip_id}|{title}|{duration:.0f}|{length}|{year}|{audio_path}")
    assert result.exit_code == 0, result.output
    expected = sorted((c for c in clips if c.source == "aimusicapi" and c.duration), key=lambda c: c.clip_id)
    lines = result.output.splitlines()
    assert len(lines) == len(expected)
    for line, clip in zip(lines, expected):
        assert clip.duration is not None
        whole = round(clip.duration)
        assert line == (f"{clip.clip_id}|{clip.title}|{clip.duration:.0f}|{whole // 60}:{whole % 60:02d}|"
                        f"{clip.created_at:%Y}|{clip.audio_path or ''}")


def test_ls_m3u_lists_downloaded_audio_with_absolute_paths(run_cli, clips, library: Path) -> None:
    lines = run_cli("ls", "--format", "m3u", "source:acedata").output.splitlines()
    assert lines[0] == "#EXTM3U"
    paths = lines[2::2]
    expected = {str(library / c.audio_path) for c in clips if c.source == "acedata" and c.audio_path}
    assert set(paths) == expected and all(Path(p).is_file() for p in paths)


# --- search ---------------------------------------------------------------------------------------


def search_json(run_cli, *words: str) -> list[dict[str, Any]]:
    result = run_cli("search", "--format", "json", *words)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_search_finds_lyrics_and_ranks_title_hits_first(run_cli) -> None:
    rows = search_json(run_cli, "lighthouse")
    # a title hit outweighs even a lyric that repeats the word; one lyric mention comes last
    assert [r["clip_id"] for r in rows] == ["lh-title", "lh-dense", "lh-lyric"]
    assert rows[0]["score"] > rows[1]["score"] > rows[2]["score"]
    assert "«lighthouse»" in rows[2]["snippet"].casefold()


def test_search_words_are_anded_accent_and_case_blind(run_cli, clips) -> None:
    rows = search_json(run_cli, "RAIN", "window")
    expected = {c.clip_id for c in clips if c.lyrics and "rain on the window" in c.lyrics}
    assert ids(rows) == expected and expected
    assert ids(search_json(run_cli, "creme", "brulee")) == {"cafe-clip"}
    assert ids(search_json(run_cli, "lightho*")) == {"lh-title", "lh-lyric", "lh-dense"}
    assert ids(search_json(run_cli, '"by the sea"')) == {"lh-title"}
    assert ids(search_json(run_cli, "ballad")) >= {"lh-title", "acdc-clip"}  # style tags are indexed


def test_search_limit_and_table(run_cli) -> None:
    assert len(search_json(run_cli, "--limit", "3", "rain")) == 3
    lines = run_cli("search", "lighthouse").output.splitlines()
    assert lines[0].split("\t") == ["source", "clip_id", "title", "duration", "snippet"]
    assert lines[1].split("\t")[1] == "lh-title" and len(lines) == 4


@pytest.mark.parametrize("text", ['AC/DC "live"', '"unbalanced', "-", ":", "*", "title:", "NEAR(a b)", "a AND OR",
                                  "^", "'", ")", "lyrics: x", '""', "x*y", "col:val AND", "{}", "%_"])
def test_hostile_search_text_never_crashes(run_cli, data, text: str) -> None:
    result = run_cli("search", "--format", "json", "--", text)
    assert result.exit_code in (0, 2), result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
    if result.exit_code == 0:
        assert isinstance(json.loads(result.output), list)


def test_search_finds_punctuated_titles(run_cli) -> None:
    assert ids(search_json(run_cli, 'AC/DC "live"')) == {"acdc-clip"}
    assert run_cli("search", "--", "-").exit_code == 2  # nothing searchable is a usage error


def test_index_follows_updates_and_deletes(run_cli, library: Path) -> None:
    newer = TaskRecord("acedata", "lighthouse-task", Status.SUCCEEDED, created_at=START, clips=(
        ClipRecord(clip_id="lh-lyric", title="Harbor Song", lyrics="now about a zeppelin over the bay"),))
    with Store(f"sqlite:///{library / 'archiver.db'}") as store:
        assert store.apply([newer]).clips_updated == 1
    assert ids(search_json(run_cli, "lighthouse")) == {"lh-title", "lh-dense"}
    assert ids(search_json(run_cli, "zeppelin")) == {"lh-lyric"}
    con = sqlite3.connect(library / "archiver.db")
    with con:
        con.execute("PRAGMA foreign_keys = ON")
        con.execute("DELETE FROM tasks WHERE task_id = 'lighthouse-task'")  # cascades to its clips
        con.execute("INSERT INTO clips_fts(clips_fts) VALUES ('integrity-check')")
    con.close()
    assert search_json(run_cli, "zeppelin") == [] and search_json(run_cli, "lighthouse") == []


def test_listing_is_one_statement(library: Path, data) -> None:
    statements: list[str] = []
    with Store(f"sqlite:///{library / 'archiver.db'}") as store:
        event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        rows = list_clips(store, ["rain", "^source:acedata", "duration:60..", "year:2025..2026"],
                          sort=["title", "created-"], limit=50)
        found = search(store, "rain window")
    assert rows and found
    assert len(statements) == 2
    assert all("rain" not in s and "acedata" not in s for s in statements)  # values are bound, not spliced


def _ranked_in_one_statement(store: Store, text_: str, terms: list[str], limit: int, offset: int) -> list[Any]:
    """The oracle: every match ranked and given its snippet in a single SELECT."""
    from archiver.library import _FILES, CLIP_SELECT, FTS_WEIGHTS, SNIPPET_MARKS
    from archiver.query import compile_query, fts_query

    compiled = compile_query(terms)
    sql = (f"{CLIP_SELECT}, snippet(clips_fts, -1, :open, :close, '…', 12) AS snippet, "
           f"bm25(clips_fts, {', '.join(map(str, FTS_WEIGHTS))}) AS score FROM clips_fts "
           f"JOIN clips c ON c.id = clips_fts.rowid JOIN tasks t ON t.id = c.task_pk{_FILES} "
           f"WHERE clips_fts MATCH :match{compiled.clause(' AND ')} ORDER BY score, c.id LIMIT :limit OFFSET :offset")
    params = {**compiled.params, "match": fts_query(text_), "open": SNIPPET_MARKS[0], "close": SNIPPET_MARKS[1],
              "limit": limit, "offset": offset}
    with store.engine.connect() as conn:
        return [(r.clip_id, r.title, r.audio_path, r.image_path, r.snippet, round(-float(r.score), 4))
                for r in conn.execute(text(sql), params)]


@pytest.mark.parametrize("terms", [[], ["^source:acedata"], ["duration:60.."], ["downloaded:yes"], ["-downloaded:yes", "^title:a"],
                                   ["status:succeeded", "year:2025..2026"]])
@pytest.mark.parametrize("words", ["rain", "rain window", "lightho*", "ballad"])
def test_search_pages_match_ranking_every_hit_at_once(library: Path, data, terms: list[str], words: str) -> None:
    """Ranking first and reading only the page's rows (and snippets) gives what one statement over
    every match gives: the same rows, order, snippets and scores, with filters and deep pages."""
    with Store(f"sqlite:///{library / 'archiver.db'}") as store:
        total = len(search(store, words, terms=terms))
        assert count_clips(store, terms, text_=words) == total
        for limit, offset in [(3, 0), (2, 1), (50, 0), (1, max(0, total - 1)), (5, total + 3)]:
            got = [(r["clip_id"], r["title"], r["audio_path"], r["image_path"], r["snippet"], r["score"])
                   for r in search(store, words, terms=terms, limit=limit, offset=offset)]
            assert got == _ranked_in_one_statement(store, words, terms, limit, offset), (limit, offset)
    assert total or words == "ballad" or terms


# --- export ---------------------------------------------------------------------------------------


def test_export_m3u_paths_are_relative_to_the_playlist(run_cli, clips, tmp_path: Path) -> None:
    playlist = tmp_path / "elsewhere" / "lists" / "2026.m3u"
    result = run_cli("export", "m3u", "year:2026", "^status:running", "--sort", "created", "-o", str(playlist))
    assert result.exit_code == 0, result.output
    lines = playlist.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#EXTM3U"
    expected = sorted((c for c in clips if c.created_at.year == 2026 and c.status != "running" and c.audio_path),
                      key=lambda c: c.created_at)
    assert len(lines) == 1 + 2 * len(expected) and expected
    for info, path, clip in zip(lines[1::2], lines[2::2], expected):
        assert info == f"#EXTINF:{round(clip.duration) if clip.duration else -1},{clip.model or clip.source} - {clip.title}"
        assert not os.path.isabs(path) and path.startswith("..")
        resolved = (playlist.parent / path).resolve()
        assert resolved.is_file() and resolved.as_posix().endswith(clip.audio_path or "?")
    assert [p.name for p in playlist.parent.iterdir()] == ["2026.m3u"]  # no temp file left behind
    assert f"wrote {len(expected)} clip(s)" in result.output


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_export_json_and_csv(run_cli, clips, tmp_path: Path, fmt: str) -> None:
    expected = {c.clip_id for c in clips if c.source == "mountsea"}
    out = tmp_path / f"out.{fmt}"
    assert run_cli("export", fmt, "source:mountsea", "-o", str(out)).exit_code == 0
    stdout = run_cli("export", fmt, "source:mountsea").output
    text = out.read_text(encoding="utf-8")
    assert text == stdout
    rows = json.loads(text) if fmt == "json" else list(csv.DictReader(io.StringIO(text)))
    assert {r["clip_id"] for r in rows} == expected


# --- show -----------------------------------------------------------------------------------------


def test_show_clip_by_prefix(run_cli, clips) -> None:
    result = run_cli("show", "lh-ti", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["kind"] == "clip" and data["clip_id"] == "lh-title" and data["task"]["task_id"] == "lighthouse-task"
    audio = next(f for f in data["files"] if f["kind"] == "audio")
    clip = next(c for c in clips if c.clip_id == "lh-title")
    assert (audio["path"], audio["size"], audio["state"], audio["tagged"]) == (clip.audio_path, clip.size, "downloaded", True)
    assert len(audio["sha256"]) == 64 and data["tagged"] is True
    text = run_cli("show", "lh-ti").output
    assert "Lighthouse" in text and "acedata/2026/lh-title.mp3" in text and "tagged" in text


def test_show_task_lists_its_clips_and_files(run_cli, clips) -> None:
    failed = next(c for c in clips if c.status == "succeeded" and c.audio_path is None and c.model != "special")
    data = json.loads(run_cli("show", failed.task_id[:12], "--format", "json").output)
    assert data["kind"] == "task" and data["task_id"] == failed.task_id and data["status"] == "succeeded"
    assert {c["clip_id"] for c in data["clips"]} == {c.clip_id for c in clips if c.task_id == failed.task_id}
    assert all({f["kind"] for f in c["files"]} == {"audio", "image"} for c in data["clips"])


def test_show_ambiguous_and_missing(run_cli, data) -> None:
    ambiguous = run_cli("show", "dup-a")
    assert ambiguous.exit_code == 2
    assert "dup-a1" in ambiguous.output and "dup-a2" in ambiguous.output
    assert run_cli("show", "dup-a2").exit_code == 0
    missing = run_cli("show", "no-such-id")
    assert missing.exit_code == 1 and "no-such-id" in missing.output


ID_CHARS = st.sampled_from([*"aAbBzZ09_%\\-:", "é", "É", "\ud7ff", "\ue000", "\U0010ffff"])


@settings(max_examples=300, deadline=None)
@given(ids=st.lists(st.text(ID_CHARS, min_size=1, max_size=6), min_size=1, max_size=30),
       prefix=st.text(ID_CHARS, min_size=1, max_size=3))
def test_prefix_bounds_hold_every_id_sqlite_like_matches(ids: list[str], prefix: str) -> None:
    """`show` seeks the clip_id index between these bounds: they must keep all that LIKE keeps."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE clips (clip_id TEXT)")
    conn.execute("CREATE INDEX ix ON clips (clip_id)")
    conn.executemany("INSERT INTO clips VALUES (?)", [(i,) for i in ids])
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    low, high = prefix_bounds(prefix)
    like = "clip_id LIKE ? ESCAPE '\\'"
    everything = sorted(r[0] for r in conn.execute(f"SELECT clip_id FROM clips WHERE {like}", (pattern,)))
    within = "clip_id >= ? AND " + ("clip_id < ? AND " if high else "")
    bounded = sorted(r[0] for r in conn.execute(f"SELECT clip_id FROM clips WHERE {within}{like}",
                                                (low, *([high] if high else []), pattern)))
    assert bounded == everything
    assert everything == sorted(i for i in ids if _ascii_fold(i[:len(prefix)]) == _ascii_fold(prefix))


def _ascii_fold(value: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in value)


# --- stats ----------------------------------------------------------------------------------------


def test_stats_counts_what_was_inserted(run_cli, data, library: Path) -> None:
    clips: list[Expected] = data["clips"]
    with Store(f"sqlite:///{library / 'archiver.db'}") as store:
        run = store.start_run(now=_utc(2026, 12, 1))
        store.finish_run(run, exit_code=1, errors=2, error_text="x\ny")
    stats = json.loads(run_cli("stats", "--format", "json").output)
    statuses = data["statuses"]
    assert stats["tasks"] == len(statuses) and stats["clips"] == len(clips)
    for status in ("succeeded", "failed", "running"):
        assert stats["tasks_by_status"][status] == sum(s == status for _, s in statuses.values())
    for source in SOURCES:
        entry = stats["sources"][source]
        assert entry["clips"] == sum(c.source == source for c in clips)
        assert entry["tasks"] == sum(s == source for s, _ in statuses.values())
    assert stats["duration"] == pytest.approx(sum(c.duration or 0 for c in clips))
    assert stats["bytes_on_disk"] == sum(c.size for c in clips) > 0
    downloaded = sum(c.audio_path is not None for c in clips)
    assert stats["files"]["downloaded"] == downloaded
    assert stats["files"]["failed"] == data["failed_files"]
    assert stats["last_sync"]["exit_code"] == 1 and stats["last_sync"]["errors"] == 2
    assert stats["last_sync"]["started_at"] == "2026-12-01T00:00:00Z"
    text = run_cli("stats").output
    assert f"clips      {len(clips)}" in text and f"{downloaded} downloaded" in text and "exit 1" in text


def test_a_playlist_entry_starting_with_a_hash_is_not_a_comment(tmp_path: Path) -> None:
    """`{title}.{ext}` and the song "#1 Hit": its relative path would be read as a comment line."""
    from archiver.library import m3u

    rows = [{"audio_path": "#1 Hit.mp3", "title": "#1 Hit", "duration": 61.0, "source": "acedata"},
            {"audio_path": "b/#2.mp3", "title": "#2", "duration": None, "source": "acedata"}]
    lines = m3u(rows, tmp_path, tmp_path).splitlines()
    entries = [line for line in lines if not line.startswith("#")]
    assert entries == ["./#1 Hit.mp3", "b/#2.mp3"]
    assert (tmp_path / entries[0]).resolve() == (tmp_path / "#1 Hit.mp3").resolve()


@pytest.mark.parametrize("title, written", [("=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"),
                                            ("+1 (remix)", "'+1 (remix)"), ("@home", "'@home"), ("-Intro-", "'-Intro-"),
                                            ("-42", "-42"), ("Plain = fine", "Plain = fine"),
                                            ("\x07=1+1", "'=1+1")])
def test_csv_cells_a_spreadsheet_would_run_start_as_text(title: str, written: str) -> None:
    from archiver.render import rows_csv

    out = io.StringIO()
    rows_csv([{"title": title, "seed": "-7", "duration": -1.5}], ["title", "seed", "duration"], out)
    assert list(csv.DictReader(io.StringIO(out.getvalue()))) == [{"title": written, "seed": "-7", "duration": "-1.5"}]
