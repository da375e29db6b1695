"""Issue #7, part 4: bad input never crashes a sync and never writes outside the library.

Hostile payloads (hypothesis) through the normalizers, the database and the path builder; media
URLs that are not http(s) or not URLs at all; oversized media; redirect loops on the API and on
the media host; API answers that are not JSON. Every case must end as a reported error on its
own task or file, never as an internal error that stops the whole run. On either engine: the
database that hostile text goes into is SQLite's file or a PostgreSQL catalog.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from archiver.testkit import Lib, Loopback, no_tracebacks

from archiver.errors import ArchiverError
from archiver.paths import DEFAULT_TEMPLATE, clip_fields, render_relpath, resolve_inside, unique_relpath
from archiver.providers import SOURCES as SOURCE_TABLE
from archiver.providers.base import parse_json
from archiver.simulator import Simulator
from archiver.store import Store

EXAMPLES = int(os.environ.get("ARCHIVER_HYPOTHESIS_EXAMPLES", "200"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])
SAMPLE_MP3 = (Path(__file__).parents[1] / "archiver" / "data" / "media" / "sample.mp3").read_bytes()


@pytest.fixture
def env(tmp_path: Path, pg_catalog: str | None) -> Iterator[tuple[Lib, Loopback]]:
    """A library (synced from the simulator) and a loopback server for the odd answers."""
    with Simulator() as sim, Loopback() as loop:
        yield Lib.create(sim, tmp_path / "input", "connect_timeout = 2\nread_timeout = 2\n"
                                                   "max_file_size = 200000\nretry_budget = 1\n", pg_catalog), loop


def import_clips(lib: Lib, clips: list[dict[str, Any]], task_id: str = "t-input") -> None:
    """Clips pointing wherever the test wants, through `archiver import` (an AIMusicAPI body)."""
    body = lib.config.parent / f"{task_id}.json"
    body.write_text(json.dumps({"code": 200, "message": "success", "data": clips}), encoding="utf-8")
    result = lib.cli("import", "--task-id", task_id, str(body))
    assert result.exit_code == 0, result.output


def asset_states(lib: Lib) -> dict[str, tuple[str, str | None, str | None]]:
    return {r["clip_id"]: (r["state"], r["path"], r["last_error"]) for r in lib.query(
        "SELECT c.clip_id, a.state, a.path, a.last_error FROM assets a JOIN clips c ON c.id = a.clip_pk "
        "WHERE a.kind = 'audio'")}


def files_in(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(("archiver.db", ".archiver"))]


# ---------------------------------------------------------------------------- media URLs


def test_only_http_media_is_fetched_and_bad_urls_fail_alone(env: tuple[Lib, Loopback]) -> None:
    lib, loop = env
    loop.routes["/to-file.mp3"] = lambda h: h.reply(302, b"", "text/plain", {"Location": "file:///etc/passwd"})
    loop.routes["/to-ftp.mp3"] = lambda h: h.reply(302, b"", "text/plain", {"Location": "ftp://127.0.0.1/a.mp3"})
    loop.routes["/to-bad-port.mp3"] = lambda h: h.reply(302, b"", "text/plain",
                                                        {"Location": "http://127.0.0.1:99999/a.mp3"})
    loop.routes["/good.mp3"] = lambda h: h.file(SAMPLE_MP3, "audio/mpeg")
    bad = {
        "file": "file:///etc/passwd", "data": "data:audio/mpeg;base64,SUQzBAAAAAAA", "ftp": "ftp://127.0.0.1/a.mp3",
        "javascript": "javascript:alert(1)", "relative": "/media/a.mp3", "no-host": "http:///a.mp3",
        "bad-ipv6": "http://[::1/a.mp3", "bad-port": "http://127.0.0.1:99999/a.mp3",
        "to-file": loop.url("/to-file.mp3"), "to-ftp": loop.url("/to-ftp.mp3"),
        "to-bad-port": loop.url("/to-bad-port.mp3"),
    }
    import_clips(lib, [{"clip_id": f"c-{k}", "title": k, "audio_url": u, "state": "succeeded"} for k, u in bad.items()]
                 + [{"clip_id": "c-good", "title": "good", "audio_url": loop.url("/good.mp3"), "state": "succeeded"}])
    code, summary = lib.sync()
    assert code == 1 and summary, lib.outputs[-1]
    states = asset_states(lib)
    assert states["c-good"][0] == "downloaded"  # one bad link never stops the others
    for key in bad:
        state, path, error = states[f"c-{key}"]
        assert state == "failed" and path is None and error, (key, states[f"c-{key}"])
    passwd = Path("/etc/passwd").read_bytes() if Path("/etc/passwd").exists() else b"\x00none"
    assert all(passwd not in p.read_bytes() for p in files_in(lib.root))
    assert [p.name for p in files_in(lib.root)] == [Path(states["c-good"][1] or "").name]
    assert no_tracebacks(lib) == []


def test_oversized_media_is_refused_and_leaves_no_part(env: tuple[Lib, Loopback]) -> None:
    lib, loop = env
    big = SAMPLE_MP3 * 12  # ~290 kB, over max_file_size = 200000
    loop.routes["/told.mp3"] = lambda h: h.file(big, "audio/mpeg")  # Content-Length says so up front
    loop.routes["/untold.mp3"] = lambda h: h.reply(200, big, "audio/mpeg", length=False)  # only the stream does
    import_clips(lib, [{"clip_id": "c-told", "audio_url": loop.url("/told.mp3"), "state": "succeeded"},
                       {"clip_id": "c-untold", "audio_url": loop.url("/untold.mp3"), "state": "succeeded"}])
    for _run in range(2):
        code, _summary = lib.sync()
        assert code == 1
        for clip_id in ("c-told", "c-untold"):
            state, path, error = asset_states(lib)[clip_id]
            assert state == "failed" and path is None and "max_file_size" in (error or "")
        assert files_in(lib.root) == []  # neither a final file nor a .part of a refused download
    assert no_tracebacks(lib) == []


def test_media_redirect_loop_is_cut_after_five_hops(env: tuple[Lib, Loopback]) -> None:
    lib, loop = env
    loop.redirect_loop("/loop.mp3")
    loop.routes["/good.mp3"] = lambda h: h.file(SAMPLE_MP3, "audio/mpeg")
    import_clips(lib, [{"clip_id": "c-loop", "audio_url": loop.url("/loop.mp3"), "state": "succeeded"},
                       {"clip_id": "c-good", "audio_url": loop.url("/good.mp3"), "state": "succeeded"}])
    code, _summary = lib.sync()
    assert code == 1
    states = asset_states(lib)
    assert states["c-good"][0] == "downloaded"
    assert states["c-loop"][0] == "failed" and "redirect" in (states["c-loop"][2] or "")
    assert loop.hits("/loop.mp3") == 6  # the first request and five redirects, not retried
    assert no_tracebacks(lib) == []


def test_api_redirect_loop_is_cut_after_five_hops(env: tuple[Lib, Loopback]) -> None:
    lib, loop = env
    loop.redirect_loop("/api/producer/tasks")
    assert lib.cli("add", "acedata", "t-1").exit_code == 0
    good = lib.sim.add_task("mountsea", steps=0)
    assert lib.cli("add", "mountsea", good).exit_code == 0
    code, summary = lib.sync(env={"ARCHIVER_ACEDATA_BASE_URL": loop.url("/api/")}, once=True)
    assert code == 1 and any("too many redirects" in e for e in summary["errors"])
    assert loop.hits("/api/producer/tasks") == 6
    tasks = {r["task_id"]: r["status"] for r in lib.query("SELECT task_id, status FROM tasks")}
    assert tasks[good] == "succeeded" and tasks["t-1"] == "pending"  # still to poll next run
    assert no_tracebacks(lib) == []


# ---------------------------------------------------------------------------- API answers


NOT_JSON: dict[str, Callable[[Any], None]] = {
    "text": lambda h: h.reply(200, b"hello", "text/plain"),
    "empty": lambda h: h.reply(200, b"", "application/json"),
    "html": lambda h: h.reply(200, b"<!doctype html><p>maintenance</p>", "text/html"),
    "html-404": lambda h: h.reply(404, b"<html>gone</html>", "text/html"),
    "html-400": lambda h: h.reply(400, b"<html>bad</html>", "text/html"),
    "bad-gzip": lambda h: h.reply(200, b"not gzip at all", "application/json", {"Content-Encoding": "gzip"}),
    "gzip-of-html": lambda h: h.reply(200, gzip.compress(b"<html></html>"), "application/json",
                                      {"Content-Encoding": "gzip"}),
    "deep": lambda h: h.reply(200, b"[" * 100_000 + b"]" * 100_000, "application/json"),
    "list": lambda h: h.reply(200, b"[1, 2]", "application/json"),
    "string": lambda h: h.reply(200, b'"ok"', "application/json"),
    "cut": lambda h: h.reply(200, b'{"id": "t-1", "respon', "application/json"),
}


# Parsing is the same on both engines; on PostgreSQL one answer of each outcome (an error, a 404).
@pytest.mark.parametrize("engine, kind", [*(("sqlite", kind) for kind in sorted(NOT_JSON)),
                                          ("postgresql", "cut"), ("postgresql", "html-404")], indirect=["engine"])
def test_api_answers_that_are_not_json_are_errors(env: tuple[Lib, Loopback], kind: str) -> None:
    lib, loop = env
    loop.routes["/api/producer/tasks"] = NOT_JSON[kind]
    assert lib.cli("add", "acedata", "t-1").exit_code == 0
    code, summary = lib.sync(env={"ARCHIVER_ACEDATA_BASE_URL": loop.url("/api/")}, once=True)
    assert code in (0, 1) and summary, lib.outputs[-1]
    assert no_tracebacks(lib) == []
    (task,) = lib.query("SELECT status, error FROM tasks")
    if code == 0:  # only an unknown task (404) may count as an answer
        assert kind == "html-404" and task["error"]
    else:
        assert summary["errors"] and task["status"] == "pending"


def test_an_answer_that_inflates_past_the_cap_is_refused_once(env: tuple[Lib, Loopback]) -> None:
    """A gzip bomb: 64 KiB on the wire, 64 MiB decoded; refused as it inflates, not retried."""
    from archiver.providers.http import MAX_ANSWER

    bomb = gzip.compress(b" " * (MAX_ANSWER * 2), compresslevel=9)
    lib, loop = env
    loop.routes["/api/producer/tasks"] = lambda h: h.reply(200, bomb, "application/json",
                                                           {"Content-Encoding": "gzip"})
    assert lib.cli("add", "acedata", "t-1").exit_code == 0
    code, summary = lib.sync(env={"ARCHIVER_ACEDATA_BASE_URL": loop.url("/api/")}, once=True)
    assert code == 1 and any("larger than 32 MiB once decoded" in e for e in summary["errors"]), summary
    assert loop.hits("/api/producer/tasks") == 1 and no_tracebacks(lib) == []
    (task,) = lib.query("SELECT status FROM tasks")
    assert task["status"] == "pending"


def _endless(status: int, sent: list[int]) -> Callable[[Any], None]:
    """An answer with `status` whose body (announced as 1 GiB) trickles until the client leaves."""
    def route(h: Any) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(1 << 30))
        h.end_headers()
        chunk = b"{" + b" " * (256 * 1024)
        try:
            for _ in range(400):  # at most 100 MiB, over 40 s
                h.wfile.write(chunk)
                h.wfile.flush()
                sent[0] += len(chunk)
                time.sleep(0.1)
        except OSError:
            pass
        h.close_connection = True
    return route


@pytest.mark.parametrize("status", [503, 429, 403])
def test_a_status_that_says_it_all_is_acted_on_without_reading_the_body(env: tuple[Lib, Loopback],
                                                                       status: int) -> None:
    """A server fault, a throttle or a refused token: the body is never read, however it goes on."""
    lib, loop = env
    sent = [0]
    loop.routes["/api/producer/tasks"] = _endless(status, sent)
    assert lib.cli("add", "acedata", "t-1").exit_code == 0
    code, summary = lib.sync(env={"ARCHIVER_ACEDATA_BASE_URL": loop.url("/api/")}, once=True)
    assert code != 0 and summary["errors"], lib.outputs[-1]
    assert not any("timed out" in e or "larger than" in e for e in summary["errors"]), summary
    assert sent[0] < 16 * 1024 * 1024, sent  # what loopback buffers took before the client left


def test_an_error_answer_is_read_only_as_far_as_a_message_goes(env: tuple[Lib, Loopback]) -> None:
    """A 404 whose body runs on: not read past a message's length, and reported as the 404 it is."""
    lib, loop = env
    sent = [0]
    loop.routes["/api/producer/tasks"] = _endless(404, sent)
    assert lib.cli("add", "acedata", "t-1").exit_code == 0
    code, summary = lib.sync(env={"ARCHIVER_ACEDATA_BASE_URL": loop.url("/api/")}, once=True)
    (task,) = lib.query("SELECT status, error FROM tasks")
    assert code in (0, 1) and "HTTP 404" in task["error"], (summary, dict(task))
    assert not any("timed out" in e or "larger than" in e for e in summary["errors"]), summary
    assert sent[0] < 16 * 1024 * 1024, sent


def test_lone_surrogates_from_a_provider_are_stored_and_shown(env: tuple[Lib, Loopback]) -> None:
    """JavaScript backends cut titles inside an emoji and send "\\ud83c" alone: valid JSON, invalid text."""
    lib, loop = env
    good = {"id": "t-1", "response": {"task_id": "t-1", "data": [{
        "id": "c-1", "title": "Cut emoji \ud83c", "lyric": "la \udfff la", "sound": "pop\ud800",
        "state": "succeeded", "audio_url": loop.url("/a.mp3")}]}}
    loop.routes["/api/producer/tasks"] = lambda h: h.reply(200, json.dumps(good).encode(), "application/json")
    loop.routes["/bad/producer/tasks"] = lambda h: h.reply(
        400, json.dumps({"error": {"code": "x", "message": "no \ud800 such"}}).encode(), "application/json")
    loop.routes["/a.mp3"] = lambda h: h.file(SAMPLE_MP3, "audio/mpeg")
    assert lib.cli("add", "acedata", "t-1").exit_code == 0
    code, _summary = lib.sync(env={"ARCHIVER_ACEDATA_BASE_URL": loop.url("/api/")}, once=True)
    assert code == 0, lib.outputs[-1]
    (clip,) = lib.query("SELECT title, lyrics, tags FROM clips")
    assert clip["title"] == "Cut emoji \ufffd" and clip["lyrics"] == "la \ufffd la"
    assert "\ufffd" in lib.cli("ls").output
    assert lib.cli("add", "acedata", "t-2").exit_code == 0
    code, summary = lib.sync(env={"ARCHIVER_ACEDATA_BASE_URL": loop.url("/bad/")}, once=True)
    assert code == 1 and any("no \ufffd such" in e for e in summary["errors"])
    body = lib.config.parent / "saved.json"
    body.write_text(json.dumps({"code": 200, "data": [{"clip_id": "c-2", "title": "x\udc80"}]}), encoding="utf-8")
    assert lib.cli("import", "--task-id", "t-3", str(body)).exit_code == 0
    assert no_tracebacks(lib) == []


def test_task_ids_that_are_not_text_are_usage_errors(env: tuple[Lib, Loopback]) -> None:
    """Bytes that are not UTF-8 in an argument arrive as lone surrogates (surrogateescape)."""
    lib, _loop = env
    body = lib.config.parent / "body.json"
    body.write_text(json.dumps({"code": 200, "data": [{"clip_id": "c-1", "title": "x"}]}), encoding="utf-8")
    for args in (("add", "acedata", "ok", "abc\udcff"), ("import", "--task-id", "t\udcff", str(body))):
        result = lib.cli(*args)
        assert result.exit_code == 2 and "not valid UTF-8" in result.output, (args, result.output)
    listed = lib.cli("tasks", "--format", "json")  # nothing half-added (no database made at all, even)
    assert (listed.exit_code == 0 and listed.output.strip() in ("", "[]")) or "no library at" in listed.output
    assert no_tracebacks(lib) == []


# ---------------------------------------------------------------------------- properties

HOSTILE = ["/", "\\", "..", ".", "\x00", "\n", "\r", "\t", "\u202e", "\ufeff", "\ud800", "\udfff", "\ud83c",
           "CON", "nul", "COM1", ":", "*", "?", "<", ">", "|", "{title}", "%Y", "%", "{", "}", "~", "$HOME",
           "😀", "👍🏽", "🇺🇸", "e\u0301", "\u200d", "x" * 300, "😀" * 80, "/etc/passwd", "../../", "C:\\"]
texts = st.one_of(
    st.none(), st.text(max_size=40),
    st.lists(st.one_of(st.sampled_from(HOSTILE), st.characters(codec=None)), max_size=60).map("".join),
)
ids = st.one_of(st.text(min_size=1, max_size=40),
                st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=5).map("".join))
leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | texts
json_values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


def clip_object(clip_id: Any, title: Any, lyrics: Any, tags: Any, extra: dict[str, Any]) -> dict[str, Any]:
    clip = {"clip_id": clip_id, "id": clip_id, "audioId": clip_id, "title": title, "lyrics": lyrics,
            "lyric": lyrics, "tags": tags, "sound": tags, "state": "succeeded", "duration": 60,
            "audio_url": "http://127.0.0.1:9/a.mp3", "audioUrl": "http://127.0.0.1:9/a.mp3"}
    return {**clip, **extra}


def wire(payload: Any) -> Any:
    """The payload as it reaches the normalizers: sent as JSON, parsed by archiver."""
    return parse_json(json.dumps(payload).encode())


def payload_for(source: str, task_id: str, clip: dict[str, Any]) -> Any:
    """The clip inside its source's documented body shape."""
    if source.startswith("ccapi"):
        return {"code": "success", "data": {"task_id": task_id, "status": "SUCCESS", "platform": source[6:],
                                            "updated_at": 1773385996, "data": {"clips": [clip]}}}
    if source == "mountsea":
        return {"taskId": task_id, "status": "completed", "result": clip}
    if source == "acedata":
        return {"id": task_id, "request": {}, "response": {"task_id": task_id, "data": [clip]}}
    return {"code": 200, "data": [clip]}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[tuple[Store, Path]]:
    """One store for every example: an SQLite file, or a PostgreSQL catalog."""
    root = tmp_path_factory.mktemp("hostile")
    url = f"sqlite:///{root / 'archiver.db'}"
    if request.param == "postgresql":
        url = str(request.getfixturevalue("pg_cluster").database())
    with Store(url) as opened:
        yield opened, root


@PROPERTY
@given(source=st.sampled_from(sorted(SOURCE_TABLE)), task_id=ids, clip_id=ids, title=texts, lyrics=texts,
       tags=texts, extra=st.dictionaries(st.sampled_from(["model", "mv", "seed", "created_at", "duration",
                                                          "image_url", "state"]), json_values, max_size=4),
       template=st.sampled_from([DEFAULT_TEMPLATE, "{title}/{lyrics} {tags} [{clip_id}].{ext}",
                                 "{task_id}/{model}/{created:%Y/%m}/{title}.{ext}"]))
def test_property_hostile_payloads_never_crash_and_stay_inside(
        store: tuple[Store, Path], source: str, task_id: str, clip_id: Any, title: Any, lyrics: Any,
        tags: Any, extra: dict[str, Any], template: str) -> None:
    """Payload -> normalizer -> database -> path: an ArchiverError at most, and never outside."""
    db, root = store
    normalizer = SOURCE_TABLE[source]
    task_id = wire(task_id)  # the id the user added: `archiver add` takes only valid text
    try:
        body = wire(payload_for(source, task_id, clip_object(clip_id, title, lyrics, tags, extra)))
        records = normalizer.normalize(body, task_id=task_id)
    except ArchiverError:
        return
    try:
        db.apply(records)
    except ArchiverError:
        pass
    for record in records:
        for clip in record.clips:
            fields = clip_fields(clip, source=source, task_id=record.task_id)
            try:
                rel = render_relpath(template, fields, "mp3")
            except ArchiverError:
                continue
            assert not rel.is_absolute() and ".." not in rel.parts
            target = resolve_inside(root, rel)
            assert target.is_relative_to(root.resolve()) and target != root.resolve()
            first = rel.as_posix()
            other = unique_relpath(rel, clip.clip_id, lambda c, first=first: c == first)  # type: ignore[misc]
            assert resolve_inside(root, other).is_relative_to(root.resolve())
            assert isinstance(PurePosixPath(other), PurePosixPath)


@settings(max_examples=max(10, EXAMPLES // 20), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(title=texts, lyrics=texts)
def test_property_hostile_text_is_tagged_or_reported(tmp_path: Path, title: Any, lyrics: Any) -> None:
    """What a title or lyrics hold never breaks the tag writer: tagged, or a TaggingError."""
    from archiver.tagging import TagData, read_tags, tag_file

    path = tmp_path / "song.mp3"
    shutil.copyfile(Path(__file__).parents[1] / "archiver" / "data" / "media" / "sample.mp3", path)
    data = TagData(title=_valid(title) or "c", artist="a", album=None, date=None, genre=None, comment=None,
                   lyrics=_valid(lyrics), duration=60.0, source="acedata", task_id="t", clip_id="c",
                   model=None, seed=None, source_url=None, cover=None)
    try:
        tag_file(path, data)
    except ArchiverError:
        return
    assert read_tags(path)["clip_id"] == "c"


def _valid(value: Any) -> str | None:
    """Text as the database hands it to the tagger: through the wire and the normalizer's rule."""
    from archiver.records import text

    return text(wire(value))



def test_ids_holding_nul_are_imported_once(env: tuple[Lib, Loopback]) -> None:
    """NUL is valid JSON; PostgreSQL text cannot hold it (stored as U+FFFD there): a saved body
    whose task and clip ids hold one is imported once, and its rows are found again the next time."""
    lib, _loop = env
    body = lib.config.parent / "body.json"
    body.write_text(json.dumps({"id": "t\x00nul", "response": {"task_id": "t\x00nul", "data": [
        {"id": "c\x001", "title": "x", "state": "succeeded", "audio_url": "http://127.0.0.1:9/a.mp3"}]}}),
        encoding="utf-8")
    first, again = (lib.cli("import", "--source", "acedata", str(body)) for _ in range(2))
    assert first.exit_code == 0 and "tasks: 1 added" in first.output, first.output
    assert again.exit_code == 0 and "tasks: 0 added" in again.output and "clips: 0 added" in again.output, again.output
    assert len(lib.query("SELECT id FROM tasks")) == 1 and len(lib.query("SELECT id FROM clips")) == 1
    assert no_tracebacks(lib) == []
