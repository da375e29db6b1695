"""Issue 12, classes 8, 9 (durations) and 12 (zero-width names, `field:`, rebuild claims).

Provider text reaches the terminal through every read command; none of it may carry a control
character, an escape sequence or a bidi override there, and one record stays one line in the
line formats. Absurd durations are stored as unknown, and `stats` stays sane on old rows.
"""

from __future__ import annotations

import io
import json
import math
import re
import shutil
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.paths import render_relpath, sanitize_component
from archiver.providers import SOURCES, get_source
from archiver.query import compile_query
from archiver.errors import UsageError
from archiver.records import ClipRecord, Status, TaskRecord, duration
from archiver.render import rows_table
from archiver.store import Store

BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
MAX_DURATION = 24 * 3600

HOSTILE = [
    "\x1b[2J\x1b[Hcleared screen",
    "\x1b]8;;http://evil.example/\x1b\\click me\x1b]8;;\x1b\\",
    "\x1b]0;window title\x07after",
    "cr\rback\bnul\x00del\x7fcsi\x9b31mC1\x85nel",
    "\u202eevil\u202c \u2066isolate\u2069",
    "two\nlines\r\nand\u2028more",
    "tab\there\x0bvt\x0cff",
    "\x9d0;c1 osc\x9c rest",
    "\x1b[31mred\x1b[0m \x1bc reset",
]

control_text = st.lists(st.one_of(
    st.characters(codec="utf-8", exclude_categories=("Cs",)),
    st.sampled_from(["\x1b", "\x1b[", "\x1b]", "\x07", "\x9b", "\x9d", "\x9c", "\r", "\n", "\x00", "\x7f",
                     "\u202e", "\u2028", "\x85", "\t", "\b", ";", "[", "]", "2J", "0;", "\x1b\\"]),
), max_size=30).map("".join)


def unsafe(text: str, *, newline_ok: bool = False, tab_ok: bool = False) -> list[str]:
    """Characters a terminal acts on: C0 (bar \\n or the column tab where allowed), DEL, C1, bidi
    controls, U+2028/9."""
    bad = []
    for ch in text:
        cp = ord(ch)
        if (ch == "\n" and newline_ok) or (ch == "\t" and tab_ok):
            continue
        if cp < 0x20 or 0x7F <= cp <= 0x9F or ch in BIDI_CONTROLS or ch in "\u2028\u2029":
            bad.append(ch)
    return bad


# ------------------------------------------------------------------ class 8: the one cleaner


@settings(max_examples=300, deadline=None)
@given(text=control_text)
def test_clean_line_and_text_leave_nothing_a_terminal_acts_on(text: str) -> None:
    from archiver.render import clean_line, clean_text, json_text

    line = clean_line(text)
    assert unsafe(line) == [] and "\n" not in line
    multi = clean_text(text)
    assert unsafe(multi, newline_ok=True) == []
    assert json.loads(json_text(text)) == text  # JSON keeps every character, escaped
    assert unsafe(json_text(text)) == []


@pytest.mark.parametrize("hostile", HOSTILE)
def test_escape_sequences_are_removed_whole(hostile: str) -> None:
    from archiver.render import clean_line

    line = clean_line(hostile)
    assert unsafe(line) == []
    for payload in ("2J", "evil.example", "window title", "31m"):
        assert payload not in line
    assert clean_line("plain Ünïcödé title 🎵") == "plain Ünïcödé title 🎵"


def test_rich_table_on_a_terminal_is_clean() -> None:
    out = io.StringIO()
    rows_table([{"title": t, "n": i} for i, t in enumerate(HOSTILE)], ("title", "n"), out, tty=True)
    assert unsafe(out.getvalue(), newline_ok=True) == []
    assert "cleared screen" in out.getvalue()


def _hostile_library(library: Path, url: str | None = None) -> None:
    """One task per hostile string, in every text field a provider fills, with a downloaded file."""
    records = []
    for i, hostile in enumerate(HOSTILE):
        clip = ClipRecord(clip_id=f"clip{i:02d}", title=f"song {hostile}", tags=f"pop {hostile}",
                          lyrics=f"verse {hostile}\nchorus {hostile}", model=f"m {hostile}", duration=120.0 + i,
                          created_at=datetime(2026, 1, 1 + i, tzinfo=timezone.utc), state="complete")
        records.append(TaskRecord(source="acedata", task_id=f"task{i:02d}", status=Status.FAILED,
                                  provider_status=f"ERR {hostile}", error=f"provider said {hostile}",
                                  clips=(clip,)))
    with Store(url or f"sqlite:///{library / 'archiver.db'}") as store:
        store.apply(records)
        for i in range(len(HOSTILE)):
            store.record_file("acedata", f"clip{i:02d}", "audio", path=f"acedata/clip{i:02d}.mp3", size=1,
                              sha256="0" * 64, url=f"https://cdn.example/{i}\x1b[2J.mp3", tagged=True)


COMMANDS: list[tuple[str, tuple[str, ...], int | None, int]] = [
    # name, arguments, lines per record in a line format (None: free text), tab-separated columns
    ("ls piped", ("ls",), 1, 7),
    ("ls template", ("ls", "--format", "{title} | {tags} | {model} | {lyrics}"), 1, 1),
    ("ls m3u", ("ls", "--format", "m3u"), 2, 1),
    ("export m3u", ("export", "m3u"), 2, 1),
    ("tasks", ("tasks",), 1, 7),
    ("search", ("search", "song"), 1, 5),
    ("show clip", ("show", "clip03"), None, 1),
    ("show task", ("show", "task:task03"), None, 1),  # click.echo strips ESC codes when piped, not \r, \b or C1
    ("stats", ("stats",), None, 0),
]


@pytest.mark.parametrize("name,args,per_record,columns", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_read_commands_print_no_control_characters(run_cli, library: Path, db_url: str, name: str,
                                                   args: tuple[str, ...], per_record: int | None, columns: int) -> None:
    _hostile_library(library, db_url)
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    tabs = columns > 1 or columns == 0
    assert unsafe(result.output, newline_ok=True, tab_ok=tabs) == [], (name, result.output)
    lines = result.output.splitlines()
    assert "\x1b" not in result.output and all(unsafe(line, tab_ok=tabs) == [] for line in lines)
    if per_record is not None:
        header = 0 if "{" in " ".join(args) else 1
        assert len(lines) == header + per_record * len(HOSTILE), (name, lines)
        if columns > 1:  # a tab inside a value would shift every column after it
            assert all(line.count("\t") == columns - 1 for line in lines), lines
    if name == "show clip":  # lyrics keep their two lines, each clean
        assert any(line.strip().startswith("verse") for line in lines)
        assert any(line.strip().startswith("chorus") for line in lines)
        assert sum(1 for line in lines if line.startswith("title")) == 1


@pytest.mark.parametrize("args", [("ls", "--format", "json"), ("tasks", "--format", "json"),
                                  ("show", "--format", "json", "clip03"), ("search", "--format", "json", "song"),
                                  ("ls", "--format", "csv"), ("export", "csv")])
def test_json_and_csv_stay_exact_but_inert(run_cli, library: Path, db_url: str, args: tuple[str, ...]) -> None:
    _hostile_library(library, db_url)
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    assert unsafe(result.output, newline_ok=True) == [], result.output
    if "json" in args:
        data = json.loads(result.output)
        assert any("\x1b" in text for text in _strings(data))  # the decoded values keep every character


stored_time = st.one_of(
    st.none(), st.just(""), st.text(max_size=12),
    st.datetimes(timezones=st.just(timezone.utc)).map(lambda d: d.isoformat(timespec="microseconds")),
    st.datetimes(timezones=st.just(timezone.utc)).map(lambda d: d.replace(microsecond=0).isoformat(timespec="microseconds")),
    st.datetimes().map(datetime.isoformat),
    st.builds(lambda d, h: d.replace(tzinfo=timezone(timedelta(hours=h))).isoformat(), st.datetimes(),
              st.integers(-23, 23)),
)
stored_length = st.one_of(st.none(), st.booleans(), st.integers(-10, 2**62), st.floats(), st.text(max_size=6))


def _outcome(call: Any) -> Any:
    try:
        return json.loads(json.dumps(call(), default=str))
    except ValueError as exc:
        return type(exc)


@pytest.fixture
def callback_tracebacks() -> Iterator[None]:
    """sqlite3 prints what a function raises inside SQLite once a user turns this on: nothing may be."""
    sqlite3.enable_callback_tracebacks(True)
    yield
    sqlite3.enable_callback_tracebacks(False)


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")  # sqlite3 prints what a function raises
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=control_text, created=stored_time, length=stored_length)
def test_json_listing_made_by_sqlite_equals_the_python_rows(library: Path, title: str, created: Any,
                                                             length: Any, callback_tracebacks: None) -> None:
    """`ls --format json` has SQLite build the objects; they must say exactly what the rows say."""
    from archiver.library import clips_json, list_clips
    from archiver.readdb import ReadDB

    if not (library / "archiver.db").exists():
        _hostile_library(library)
    con = sqlite3.connect(library / "archiver.db")
    with con:
        con.execute("UPDATE clips SET title = ?, created_at = ?, duration = ? WHERE clip_id = 'clip00'",
                    (title, created, length))
    con.close()
    with ReadDB(f"sqlite:///{library / 'archiver.db'}") as db:
        made = _outcome(lambda: json.loads("[" + ",".join(clips_json(db)) + "]"))
        rows = _outcome(lambda: list_clips(db))
    assert made == rows
    if isinstance(rows, list):
        assert [r["title"] for r in rows if r["clip_id"] == "clip00"] == [title]
        out = io.StringIO()
        from archiver.render import json_lines

        with ReadDB(f"sqlite:///{library / 'archiver.db'}") as db:
            json_lines(clips_json(db), out)
        assert unsafe(out.getvalue(), newline_ok=True) == [] and json.loads(out.getvalue()) == rows


def _strings(data: Any) -> list[str]:
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        data = list(data.values())
    return [s for item in data for s in _strings(item)] if isinstance(data, list) else []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=control_text)
@pytest.mark.sqlite_only
def test_any_title_in_line_formats_stays_one_clean_line(run_cli, library: Path, title: str) -> None:
    if not (library / "archiver.db").exists():
        _hostile_library(library)
    with sqlite3.connect(library / "archiver.db") as db:
        db.execute("UPDATE clips SET title = ?, model = ? WHERE clip_id = 'clip00'", (title, title))
    for args, count, tabs in ((("ls", "--format", "{title}\t{model}", "clip:clip00"), 1, 1),
                              (("ls", "clip:clip00"), 2, 6), (("ls", "--format", "m3u", "clip:clip00"), 3, 0)):
        result = run_cli(*args)
        assert result.exit_code == 0, result.output
        lines = result.output.split("\n")
        assert lines[-1] == "" and len(lines) - 1 == count, lines
        assert all(unsafe(line, tab_ok=True) == [] and line.count("\t") == tabs for line in lines[:-1])
    show = run_cli("show", "clip:clip00")
    assert unsafe(show.output, newline_ok=True) == []


# ------------------------------------------------------------------ class 9: durations


ABSURD = [1e308, -1, -0.5, 0, math.nan, math.inf, -math.inf, 86400, 10**400, "1e308", "nan", "inf", "-5",
          "9" * 300, " Infinity ", "86400.0"]


def _shaped(source: str, value: Any) -> Any:
    clip = {"id": "c1", "clip_id": "c1", "audioId": "c1", "title": "t", "duration": value,
            "audio_url": "https://x.example/a.mp3", "state": "complete"}
    if source.startswith("ccapi"):
        return {"code": "success", "data": {"task_id": "t", "status": "SUCCESS", "platform": source[6:],
                                            "progress": "100%", "updated_at": 1, "data": {"clips": [clip]}}}
    if source == "mountsea":
        return {"taskId": "t", "status": "completed", "result": clip}
    if source == "acedata":
        return {"id": "t", "request": {}, "response": {"success": True, "data": [clip]}}
    return {"code": 200, "data": [clip]}


@pytest.mark.parametrize("source", list(SOURCES))
@pytest.mark.parametrize("value", ABSURD, ids=[repr(v)[:12] for v in ABSURD])
def test_absurd_durations_are_unknown_with_a_warning(source: str, value: Any) -> None:
    (record,) = get_source(source).normalize(_shaped(source, value), task_id="t")
    (clip,) = record.clips
    assert clip.duration is None
    assert clip.warnings and "duration" in clip.warnings[0] and len(clip.warnings[0]) < 100


@pytest.mark.parametrize("source", list(SOURCES))
def test_plausible_duration_kept_without_warning(source: str) -> None:
    (record,) = get_source(source).normalize(_shaped(source, "185.5"), task_id="t")
    assert record.clips[0].duration == 185.5 and record.clips[0].warnings == ()


@settings(max_examples=500, deadline=None)
@given(value=st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.floats().map(repr))
def test_duration_is_in_range_or_none(value: Any) -> None:
    seconds = duration(value)
    assert seconds is None or (isinstance(seconds, float) and 0 < seconds < MAX_DURATION)
    number = float(value) if not isinstance(value, int) or abs(value) < 1e300 else math.inf
    if math.isfinite(number) and 0 < number < MAX_DURATION:
        assert seconds == pytest.approx(number)


def test_sync_with_an_absurd_duration_archives_and_stats_stay_sane(sim, sim_cli) -> None:
    sim_cli("add", "acedata", sim.add_task("acedata", steps=0, duration_lie=1e308))
    first = sim_cli("sync", "--now")
    assert first.exit_code == 0, first.output
    listed = json.loads(sim_cli("ls", "--format", "json").output)
    assert listed and all(c["duration"] is None and c["audio_path"] for c in listed)
    second = sim_cli("sync", "--now")
    assert second.exit_code == 0, second.output  # nothing left failing forever
    stats = sim_cli("stats")
    assert stats.exit_code == 0 and len(max(stats.output.split(), key=len)) < 40, stats.output


@pytest.mark.sqlite_only
def test_stats_and_ls_ignore_absurd_stored_durations(run_cli, library: Path) -> None:
    _hostile_library(library)
    with sqlite3.connect(library / "archiver.db") as db:
        db.execute("UPDATE clips SET duration = 1e308 WHERE clip_id = 'clip00'")
        db.execute("UPDATE clips SET duration = -7 WHERE clip_id = 'clip01'")
        db.execute("UPDATE clips SET duration = 9e999 WHERE clip_id = 'clip02'")  # +Inf in SQLite
    data = json.loads(run_cli("stats", "--format", "json").output)
    expected = sum(120.0 + i for i in range(3, len(HOSTILE)))
    assert data["duration"] == pytest.approx(expected)
    text = run_cli("stats").output
    assert len(max(text.split(), key=len)) < 40, text
    for args in (("ls",), ("ls", "--format", "{title} {length}"), ("ls", "--format", "m3u"), ("show", "clip02")):
        result = run_cli(*args)
        assert result.exit_code == 0, result.output
        assert not re.search(r"e\+308|\binf\b|infinity|nan", result.output, re.IGNORECASE), result.output
        assert len(max(result.output.split(), key=len)) < 200


# ------------------------------------------------------------------ class 12 (a): zero-width names

ZERO_WIDTH = ["\u200b", "\u200c", "\u2060", "\ufeff", "\u180e", "\u00ad", "\u200d"]


@pytest.mark.parametrize("char", ZERO_WIDTH, ids=[f"U+{ord(c):04X}" for c in ZERO_WIDTH])
def test_zero_width_characters_leave_file_names(char: str) -> None:
    assert sanitize_component(f"Night{char}Drive{char}") == "NightDrive"
    rel = render_relpath("{title} [{clip_id}].{ext}", {"title": f"a{char}b", "clip_id": f"c{char}1"}, "mp3")
    assert str(rel) == "ab [c1].mp3"


@pytest.mark.parametrize("emoji", ["👨\u200d👩\u200d👧", "🏳\ufe0f\u200d🌈", "👩🏽\u200d💻", "❤\ufe0f\u200d🔥"])
def test_zwj_inside_an_emoji_sequence_is_kept(emoji: str) -> None:
    assert sanitize_component(f"family {emoji}") == f"family {emoji}"
    assert sanitize_component(f"x\u200d{emoji}\u200d") == f"x{emoji}"  # stray joiners at the ends go


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(["a", " ", "👨", "🌈", "\ufe0f", "🏽", *ZERO_WIDTH]), max_size=30))
def test_no_zero_width_character_outside_emoji_sequences(text: str) -> None:
    name = sanitize_component(text)
    assert not set(name) & set(ZERO_WIDTH[:-1])
    for i, ch in enumerate(name):
        if ch == "\u200d":
            assert 0 < i < len(name) - 1 and name[i + 1] in "👨🌈"
    assert sanitize_component(name) in (name, "")


# ------------------------------------------------------------------ class 12 (b): `field:` alone


@pytest.mark.parametrize("term", ["title:", "^title:", "tags:", "clip:", "duration:", "created:", "downloaded:",
                                  "style:"])
def test_field_without_value_is_a_usage_error(run_cli, library: Path, term: str) -> None:
    _hostile_library(library)
    result = run_cli("ls", "--", term)
    assert result.exit_code == 2, result.output
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    assert "no value" in line and term.lstrip("^") in line


@pytest.mark.sqlite_only
def test_field_equals_nothing_still_finds_empty_fields(run_cli, library: Path) -> None:
    _hostile_library(library)
    with sqlite3.connect(library / "archiver.db") as db:
        db.execute("UPDATE clips SET tags = NULL WHERE clip_id = 'clip04'")
    rows = json.loads(run_cli("ls", "--format", "json", "tags:=").output)
    assert [r["clip_id"] for r in rows] == ["clip04"]


field_names = st.sampled_from(["title", "tags", "model", "source", "clip", "task", "duration", "year", "created",
                               "downloaded", "lyrics", "path", "style", "nosuch"])


@settings(max_examples=300, deadline=None)
@given(name=field_names, value=st.text(max_size=12), negate=st.booleans())
def test_queries_compile_or_raise_usage_error(name: str, value: str, negate: bool) -> None:
    term = ("^" if negate else "") + f"{name}:{value}"
    try:
        compiled = compile_query([term])
    except UsageError as exc:
        assert "\n" not in str(exc)
        return
    assert value.strip(), term  # an empty value never compiles
    assert compiled.where


# ------------------------------------------------------------------ class 12 (c): rebuild claims


def _synced(sim, sim_cli, library: Path) -> list[Path]:
    sim_cli("add", "acedata", sim.add_task("acedata", steps=0))
    assert sim_cli("sync", "--now").exit_code == 0
    clips = json.loads(sim_cli("ls", "--format", "json").output)
    return sorted(library / c["audio_path"] for c in clips)


def _lose_db(library: Path) -> None:
    for path in library.glob("archiver.db*"):
        path.unlink()


@pytest.mark.sqlite_only
def test_rebuild_refuses_unknown_sources(sim, sim_cli, library: Path) -> None:
    from archiver.tagging import TagData, tag_file

    audio = _synced(sim, sim_cli, library)
    assert len(audio) == 2
    tag_file(audio[0], TagData(source="evil-source\x1b[2J"))
    _lose_db(library)
    result = sim_cli("rebuild")
    assert result.exit_code == 0, result.output
    rel = audio[0].relative_to(library).as_posix()
    (line,) = [line for line in result.output.splitlines() if rel in line]
    assert "evil-source" in line and "not know" in line and unsafe(result.output, newline_ok=True) == []
    tasks = json.loads(sim_cli("tasks", "--format", "json").output)
    assert {t["source"] for t in tasks} == {"acedata"}
    assert audio[0].exists()
    clips = json.loads(sim_cli("ls", "--format", "json").output)
    assert [c["audio_path"] for c in clips] == [audio[1].relative_to(library).as_posix()]


@pytest.mark.sqlite_only
def test_rebuild_reports_two_files_claiming_one_clip(sim, sim_cli, library: Path) -> None:
    audio = _synced(sim, sim_cli, library)
    twin = audio[0].with_name("zz twin copy" + audio[0].suffix)
    early = audio[0].with_name("00 early copy" + audio[0].suffix)
    shutil.copyfile(audio[0], twin)
    shutil.copyfile(audio[0], early)
    _lose_db(library)
    result = sim_cli("rebuild")
    assert result.exit_code == 0, result.output
    rels = sorted(p.relative_to(library).as_posix() for p in (audio[0], twin, early))
    claims = [line for line in result.output.splitlines() if "claim" in line]
    assert len(claims) == 2, result.output
    for line in claims:
        assert rels[0] in line  # the first path keeps the clip, every time
    assert rels[1] in claims[0] + claims[1] and rels[2] in claims[0] + claims[1]
    assert all(p.exists() for p in (audio[0], twin, early))
    kept = {c["audio_path"] for c in json.loads(sim_cli("ls", "--format", "json").output)}
    assert rels[0] in kept and not {rels[1], rels[2]} & kept
    _lose_db(library)
    again = sim_cli("rebuild")
    assert [line for line in again.output.splitlines() if "claim" in line] == claims
