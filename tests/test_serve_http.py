"""`archiver serve` over HTTP on 127.0.0.1, as a user runs it: pages, filters, search, files with
Range, 404s, the token, escaping of provider text, and requests that try to leave the library."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import pytest

from archiver.errors import UnsafePath
from archiver.simulator import Simulator
from serve_support import HOSTILE, Library, build_library, clean_env, request, serve

TOKEN = "s3rve-t0ken-for-tests"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    with Simulator() as sim:
        yield build_library(sim, tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def base(library: Library) -> Iterator[str]:
    with serve(library.root) as url:
        yield url


def page(base: str, path: str, **headers: str) -> str:
    status, _, body = request(base, path, headers=headers)
    assert status == 200, (path, status, body[:500])
    return body.decode("utf-8")


def titles_on(html: str) -> set[str]:
    return set(re.findall(r'class="title" href="[^"]*">([^<]*)</a>', html))


def href(kind: str, library: Library, title: str) -> str:
    source, clip_id = library.clip(title)
    return f"/{kind}/{quote(source, safe='')}/{quote(clip_id, safe='')}"


def test_library_page_lists_clips_with_an_accessible_search_field(base: str, library: Library) -> None:
    html = page(base, "/")
    assert re.search(r'<label for="q">Search</label>\s*<input type="search" id="q" name="q"', html)
    assert {"Albatross at Dawn", "Harbour Lights", "Paper Moon", "Glass River"} <= titles_on(html)
    assert 'aria-label="Play Albatross at Dawn"' in html
    assert "1–5 of 5 clips" in html  # two clips per task, MountSea one; the failed task none
    assert '<button type="button" id="toggle" aria-label="Play"' in html


@pytest.mark.parametrize(("query", "expected"), [
    ("source=mountsea", {"Glass River"}),
    ("q=title%3Aalbatross", {"Albatross at Dawn"}),
    ("q=%5Esource%3Accapi-suno+%5Esource%3Aacedata", {"Glass River"}),
    ("q=albatross", {"Albatross at Dawn", "Harbour Lights"}),  # a bare word matches the lyrics too
    ("status=failed", set()),
    ("status=succeeded&q=path%3Amountsea", {"Glass River"}),
    ("q=downloaded%3Ano", set()),
    ("duration=..60&source=acedata", {"Paper Moon", "<img src=x onerror=alert(1)>"}),
    ("duration=300..", set()),
])
def test_filters_and_the_query_language_select_clips(base: str, query: str, expected: set[str]) -> None:
    html = page(base, f"/?{query}")
    assert {t.replace("&lt;", "<").replace("&gt;", ">") for t in titles_on(html)} == expected
    assert (f"1–{len(expected)} of {len(expected)} clip" if expected else "No clips match.") in html  # the count agrees


def test_year_filter_and_sort(base: str, library: Library) -> None:
    year = library.lib.query("SELECT substr(created_at, 1, 4) FROM clips LIMIT 1")[0][0]
    assert len(titles_on(page(base, f"/?year={year}"))) == 5
    assert titles_on(page(base, f"/?year={int(year) + 1}")) == set()
    ordered = re.findall(r'class="title" href="[^"]*">([^<]*)</a>', page(base, "/?sort=title&source=ccapi-suno"))
    assert ordered == ["Albatross at Dawn", "Harbour Lights"]


def test_full_text_search_ranks_and_highlights(base: str) -> None:
    html = page(base, "/?mode=text&q=harbour")
    assert re.findall(r'class="title" href="[^"]*">([^<]*)</a>', html)[0] == "Harbour Lights"  # title first
    assert "<mark>Harbour</mark>" in html or "<mark>harbour</mark>" in html


def test_a_bad_query_is_a_400_with_the_reason(base: str) -> None:
    status, _, body = request(base, "/?q=colour%3Ablue")
    assert status == 400 and "unknown field &#39;colour&#39;" in body.decode(), body[:300]
    status, _, body = request(base, "/?mode=text&q=" + "+".join(["a*"] * 3000))
    assert status == 400 and "too many words to search for (3000)" in body.decode(), body[:300]
    status, _, body = request(base, "/?q=" + "x" * 60_000)
    assert status == 400 and "longer than" in body.decode(), body[:300]


def test_provider_text_is_rendered_as_text_and_scripts_come_only_from_the_app(base: str, library: Library) -> None:
    for path in ("/", href("clip", library, HOSTILE), "/?mode=text&q=paper"):
        status, headers, body = request(base, path)
        html = body.decode("utf-8")
        assert status == 200
        assert "<img src=x" not in html and "\x1b" not in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html
        assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/app.js" defer>']
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert headers["x-content-type-options"] == "nosniff"
    assert 'aria-label="Play &lt;img src=x onerror=alert(1)&gt;"' in page(base, "/")


def test_clip_page_shows_lyrics_sections_tags_and_files(base: str, library: Library) -> None:
    html = page(base, href("clip", library, "Albatross at Dawn"))
    assert "<h3>Verse</h3>" in html and "<h3>Chorus</h3>" in html and "[Chorus]" not in html
    assert "Harbour lights, harbour lights<br>Carry me home" in html
    source, clip_id = library.clip("Albatross at Dawn")
    row = library.lib.query("SELECT seed, model, task_pk FROM clips WHERE clip_id = ?", clip_id)[0]
    assert clip_id in html
    seeded = page(base, href("clip", library, "Paper Moon"))  # AceData gives a seed
    seed, model = library.lib.query("SELECT seed, model FROM clips WHERE clip_id = ?", library.clip("Paper Moon")[1])[0]
    assert seed and f"<dt>Seed</dt><dd>{seed}</dd>" in seeded
    assert model and f"<dt>Model</dt><dd>{model}</dd>" in seeded
    task_id = library.lib.query("SELECT task_id FROM tasks WHERE id = ?", row["task_pk"])[0][0]
    assert task_id in html
    assert library.path("Albatross at Dawn").relative_to(library.root).as_posix() in html
    assert "<dt>Tags in the file</dt><dd>written</dd>" in html
    assert f'data-src="/audio/{source}/{clip_id}"' in html


def test_task_pages_show_failed_and_pending_tasks(base: str, library: Library) -> None:
    tasks = page(base, "/tasks")
    assert library.failed_task in tasks and library.pending_task in tasks
    assert tasks.index(library.failed_task) < tasks.index("Albatross") if "Albatross" in tasks else True
    failed = page(base, f"/task/acedata/{library.failed_task}")
    error = library.lib.query("SELECT error FROM tasks WHERE task_id = ?", library.failed_task)[0][0]
    assert 'class="status status-failed"' in failed and error and error.split()[0] in failed
    pending = page(base, f"/task/ccapi-producer/{library.pending_task}")
    assert "status-pending" in pending and "No clips yet." in pending
    source, clip_id = library.clip("Paper Moon")
    task_id = library.lib.query("SELECT t.task_id FROM tasks t JOIN clips c ON c.task_pk = t.id "
                                "WHERE c.clip_id = ?", clip_id)[0][0]
    assert {"Paper Moon"} <= titles_on(page(base, f"/task/{source}/{task_id}"))
    assert page(base, "/tasks?status=failed").count("status-failed") == 1


def test_stats_page_draws_a_chart_and_lists_the_runs(base: str, library: Library) -> None:
    html = page(base, "/stats")
    chart = re.search(r'<svg class="chart" role="img".*?</svg>', html, re.S)
    assert chart and chart.group(0).count("<rect") >= 1 and "<table" not in chart.group(0)
    assert re.search(r"<title>\d{4}-\d{2}: 5</title>", chart.group(0))
    assert ">mountsea</a></th><td>1</td>" in html
    runs = library.lib.query("SELECT started_at FROM sync_runs")
    assert runs and runs[0][0][:19].replace("T", " ") in html


@pytest.mark.parametrize(("title", "kind", "mime"), [("Albatross at Dawn", "audio", "audio/mpeg"),
                                                     ("Paper Moon", "audio", "audio/mp4"),
                                                     ("Paper Moon", "cover", "image/jpeg")])
def test_files_are_served_whole_and_by_range(base: str, library: Library, title: str, kind: str, mime: str) -> None:
    path = href(kind, library, title)
    data = library.path(title, "audio" if kind == "audio" else "image").read_bytes()
    status, headers, body = request(base, path)
    assert (status, headers["content-type"], body) == (200, mime, data)
    assert headers["accept-ranges"] == "bytes"
    for spec, start, end in (("bytes=10-99", 10, 100), ("bytes=-50", len(data) - 50, len(data)),
                             (f"bytes={len(data) - 7}-", len(data) - 7, len(data)),
                             (f"bytes=5-{len(data) + 100}", 5, len(data))):
        status, headers, body = request(base, path, headers={"Range": spec})
        assert status == 206, spec
        assert body == data[start:end], spec
        assert headers["content-range"] == f"bytes {start}-{end - 1}/{len(data)}"
    status, headers, _ = request(base, path, headers={"Range": f"bytes={len(data)}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{len(data)}"
    status, _, body = request(base, path, headers={"Range": "bytes=9-3"})  # invalid: ignored
    assert (status, body) == (200, data)
    status, headers, body = request(base, path, method="HEAD")
    assert status == 200 and body == b"" and headers["content-length"] == str(len(data))


def test_downloads_name_the_file_and_the_playlist_follows_the_filters(base: str, library: Library) -> None:
    status, headers, body = request(base, href("download", library, "Glass River"))
    target = library.path("Glass River")
    assert status == 200 and body == target.read_bytes()
    assert headers["content-disposition"] == f"attachment; filename*=UTF-8''{quote(target.name, safe='')}"
    status, headers, body = request(base, "/playlist.m3u8?source=ccapi-suno&sort=title")
    text = body.decode("utf-8")
    assert status == 200 and headers["content-type"].startswith("audio/x-mpegurl")
    assert "attachment" in headers["content-disposition"]
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U" and len(lines) == 5
    assert lines[2] == str(library.path("Albatross at Dawn").absolute())
    assert lines[4] == str(library.path("Harbour Lights").absolute())


@pytest.mark.parametrize("path", [
    "/audio/ccapi-suno/no-such-clip", "/cover/mountsea/nope", "/clip/acedata/nope", "/task/acedata/nope",
    "/audio/nowhere/x", "/download/ccapi-suno/nope",
])
def test_unknown_ids_are_404(base: str, path: str) -> None:
    assert request(base, path)[0] == 404


def test_a_clip_without_a_cover_has_no_cover(base: str, library: Library) -> None:
    status, _, _ = request(base, href("cover", library, "Glass River"))  # MountSea gives no image
    assert status == 404


@pytest.mark.parametrize("path", [
    "/audio/../../../../etc/passwd", "/audio/%2e%2e/%2e%2e/archiver.db", "/static/../archiver.db",
    "/static/%2e%2e/%2e%2e/%2e%2e/archiver.db", "/audio/ccapi-suno/..%2F..%2Farchiver.db",
    "/audio/ccapi-suno/../../archiver.db", "/static/..%2f..%2farchiver.db", "/cover/%2e%2e/archiver.db",
    "//etc/passwd", "/audio/ccapi-suno/%2fetc%2fpasswd",
])
def test_request_paths_never_reach_the_file_system(base: str, path: str) -> None:
    status, _, body = request(base, path)
    assert status in (404, 400), (path, status)
    assert b"SQLite format" not in body and b"root:" not in body


def test_links_planted_in_the_library_are_not_followed(base: str, library: Library, tmp_path: Path) -> None:
    secret = tmp_path / "secret.mp3"
    secret.write_bytes(b"ID3 not yours")
    audio = library.path("Harbour Lights")
    kept = audio.with_name("kept")
    audio.rename(kept)
    try:
        audio.symlink_to(secret)  # the archived file replaced by a link out of the library
        status, _, body = request(base, href("audio", library, "Harbour Lights"))
        assert status == 404 and b"not yours" not in body
    finally:
        audio.unlink()
        kept.rename(audio)
    assert request(base, href("audio", library, "Harbour Lights"))[0] == 200
    folder = library.path("Glass River").parent  # MountSea's folder holds its one clip only
    outside = tmp_path / "outside"
    shutil.copytree(folder, outside)
    moved = folder.with_name(folder.name + ".kept")
    folder.rename(moved)
    try:
        folder.symlink_to(outside, target_is_directory=True)  # a folder turned into a link
        status, _, body = request(base, href("audio", library, "Glass River"))
        assert status == 404
    finally:
        folder.unlink()
        moved.rename(folder)
    assert request(base, href("audio", library, "Glass River"))[0] == 200


def test_a_folder_swapped_for_a_link_while_files_are_opened_is_never_followed(library: Library,
                                                                            tmp_path: Path) -> None:
    """Another process swaps a library folder for a link out of it, over and over, while the
    server opens the file under it: no open may land outside (one check, then an open, could)."""
    import threading

    from archiver.web.files import open_archived

    audio = library.path("Glass River")
    root = library.lib.root
    relative = audio.relative_to(root).as_posix()
    folder = audio.parent
    real = folder.with_name(folder.name + ".real")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / audio.name).write_bytes(b"SECRET outside the library")
    folder.rename(real)
    stop = threading.Event()

    def swap() -> None:
        for target in itertools.cycle((real, outside)):
            if stop.is_set():
                return
            link = folder.with_name(".swap")
            link.symlink_to(target, target_is_directory=True)
            os.replace(link, folder)

    swapper = threading.Thread(target=swap)
    swapper.start()
    leaked, served = 0, 0
    try:
        for _ in range(3000):
            try:
                fd, size = open_archived(root, relative)
            except (OSError, UnsafePath):
                continue
            with os.fdopen(fd, "rb") as fh:
                leaked += fh.read(6) == b"SECRET"
                served += 1
    finally:
        stop.set()
        swapper.join()
        folder.unlink()
        real.rename(folder)
    assert leaked == 0 and served == 0, (leaked, served)  # the folder is a link at every open


def test_a_fifo_where_a_file_should_be_never_blocks_the_server(base: str, library: Library) -> None:
    audio = library.path("Harbour Lights")
    kept = audio.with_name("kept")
    audio.rename(kept)
    try:
        os.mkfifo(audio)
        for _ in range(3):
            assert request(base, href("audio", library, "Harbour Lights"))[0] == 404
        assert request(base, "/")[0] == 200
    finally:
        audio.unlink()
        kept.rename(audio)


RANGES_PAST_ANY_NUMBER = ("bytes=" + "1" * 5000 + "-", "bytes=-" + "9" * 5000, "bytes=1-" + "2" * 40)


def test_a_range_beyond_any_number_is_the_whole_file(base: str, library: Library) -> None:
    path = href("audio", library, "Paper Moon")
    data = library.path("Paper Moon").read_bytes()
    for header in RANGES_PAST_ANY_NUMBER:
        status, _, body = request(base, path, headers={"Range": header})
        assert (status, body) == (200, data), header


def test_no_range_header_leaves_a_descriptor_open(library: Library) -> None:
    from archiver.web.files import FdResponse, file_response

    relative = library.path("Paper Moon").relative_to(library.root).as_posix()
    opened = set(os.listdir("/proc/self/fd"))
    for header in (*RANGES_PAST_ANY_NUMBER, "bytes=999999999-"):
        response = file_response(library.root, relative, header)
        if isinstance(response, FdResponse):
            os.close(response.fd)  # what sending it does at the end
    assert set(os.listdir("/proc/self/fd")) <= opened


def test_only_loopback_host_names_are_answered_without_a_token(base: str) -> None:
    assert request(base, "/", headers={"Host": "attacker.example"})[0] == 403  # DNS rebinding
    assert request(base, "/", headers={"Host": "localhost:1234"})[0] == 200


def test_a_token_is_checked_on_every_request(library: Library) -> None:
    with serve(library.root, env=clean_env(ARCHIVER_SERVE_TOKEN=TOKEN)) as url:
        audio = href("audio", library, "Paper Moon")
        for path in ("/", audio, "/static/app.js", "/stats", "/playlist.m3u8"):
            assert request(url, path)[0] == 401, path
            assert request(url, path, headers={"Authorization": "Bearer wrong-token"})[0] == 401, path
            assert request(url, path, headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200, path
        assert request(url, "/?token=wrong")[0] == 401
        status, headers, _ = request(url, "/stats?token=" + TOKEN + "&x=1")
        assert status == 303 and headers["location"] == "/stats?x=1"
        cookie = headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
        status, headers, _ = request(url, f"//elsewhere.example/%0d%0aX:%20y?token={TOKEN}")
        assert status == 303 and headers["location"] == "/elsewhere.example/%0d%0aX:%20y" and "x" not in headers
        jar = cookie.split(";")[0]
        assert request(url, audio, headers={"Cookie": jar, "Range": "bytes=0-9"})[0] == 206
        assert request(url, "/", headers={"Cookie": jar})[0] == 200
        assert request(url, "/", headers={"Cookie": jar[:-2] + "00"})[0] == 401
        assert TOKEN not in page(url, "/", Authorization=f"Bearer {TOKEN}")


def run_archiver(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "archiver", *args], capture_output=True, text=True,
                          timeout=60, env=env or clean_env())


def test_listening_off_loopback_needs_a_token(library: Library) -> None:
    result = run_archiver("--library", str(library.root), "serve", "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and "--token" in result.stderr and result.stdout == ""


def test_a_missing_library_is_an_error_and_nothing_is_created(tmp_path: Path) -> None:
    missing = tmp_path / "no-library"
    result = run_archiver("--library", str(missing), "serve", "--port", "0")
    assert result.returncode == 1 and "no library at" in result.stderr, result
    assert not missing.exists()


def test_the_serve_token_is_a_secret_config_key(tmp_path: Path) -> None:
    result = run_archiver("config", "--format", "json", env=clean_env(ARCHIVER_SERVE_TOKEN=TOKEN,
                                                                      ARCHIVER_LIBRARY=str(tmp_path)))
    assert result.returncode == 0, result
    assert TOKEN not in result.stdout + result.stderr
    assert json.loads(result.stdout)["serve_token"] == {"value": "<redacted>",
                                                        "from": "environment ARCHIVER_SERVE_TOKEN"}
    bad = run_archiver("serve", env=clean_env(ARCHIVER_SERVE_TOKEN="two words", ARCHIVER_LIBRARY=str(tmp_path)))
    assert bad.returncode == 2 and "serve_token" in bad.stderr and "two words" not in bad.stderr


PROBE = """
import io, json, sys, threading, time, urllib.request
args, roots, paths = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
sys.argv = ["archiver", *args, "serve", "--port", "0"]
out = io.StringIO()
sys.stdout = out
from archiver.cli import main
threading.Thread(target=main, daemon=True).start()
while "http://" not in out.getvalue():
    time.sleep(0.02)
url = out.getvalue().split("at ", 1)[1].split()[0]
codes = []
for path in paths:
    try:
        with urllib.request.urlopen(url + path.lstrip("/"), timeout=20) as answer:
            codes.append(answer.status)
    except urllib.error.HTTPError as exc:
        codes.append(exc.code)
sys.__stdout__.write(json.dumps({"codes": codes, "loaded": sorted(m for m in sys.modules if m.split(".")[0] in roots)}))
sys.__stdout__.flush()
import os
os._exit(0)
"""


def test_serving_imports_no_orm_or_http_client(library: Library) -> None:
    paths = ["/", "/?mode=text&q=harbour", href("clip", library, "Paper Moon"), "/stats", "/tasks",
             href("audio", library, "Paper Moon"), f"/task/acedata/{library.failed_task}", "/playlist.m3u8"]
    roots = ["sqlalchemy", "sqlmodel", "httpx", "pycurl"]
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(["--library", str(library.root)]),
                          json.dumps(roots), json.dumps(paths)], capture_output=True, text=True, timeout=120,
                         env=clean_env(), cwd=os.getcwd())
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["codes"] == [200] * len(paths)
    assert result["loaded"] == [], f"archiver serve imported {result['loaded']}"


def test_pages_of_a_bigger_library_cover_every_clip_once(tmp_path: Path) -> None:
    from archiver.testkit import Lib
    from archiver.web.views import PAGE_SIZE

    with Simulator() as sim:
        lib = Lib.create(sim, tmp_path)
        task = sim.add_task("acedata", clips=PAGE_SIZE * 2 + 7, steps=0)
        assert lib.cli("add", "acedata", task).exit_code == 0
        assert lib.sync("--no-download")[0] == 0
    ids = {r[0] for r in lib.query("SELECT clip_id FROM clips")}
    assert len(ids) == PAGE_SIZE * 2 + 7
    with serve(lib.root) as url:
        seen: list[str] = []
        for number in (1, 2, 3):
            html = page(url, f"/?sort=title&page={number}")
            seen += re.findall(r'href="/clip/acedata/([^"]+)"', html)
            assert (f"page={number + 1}" in html) == (number < 3)
        assert len(seen) == len(ids) and set(seen) == ids
        assert f"Page 4 is past the end: {len(ids)} clips in all." in page(url, "/?page=4")
        titles = [t for t in re.findall(r'class="title" href="[^"]*">([^<]*)</a>', page(url, "/?sort=title"))]
        assert titles == sorted(titles, key=str.casefold)


def test_pages_answer_while_a_sync_holds_the_write_lock(base: str, library: Library) -> None:
    """A writer in the middle of a transaction (as a sync is) neither blocks the pages nor is blocked."""
    import sqlite3

    writer = sqlite3.connect(library.lib.db, timeout=1)
    try:
        assert writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO tasks (source, task_id, status, polls, idle_polls, poll_errors) "
                       "VALUES ('ccapi-producer', 'task_written_meanwhile', 'pending', 0, 0, 0)")
        assert "task_written_meanwhile" not in page(base, "/tasks")  # not committed yet: not shown
        assert request(base, "/")[0] == 200 and request(base, href("audio", library, "Paper Moon"))[0] == 200
        writer.commit()  # the readers held no lock that stops it
        assert "task_written_meanwhile" in page(base, "/tasks")  # each request reads afresh
    finally:
        writer.execute("DELETE FROM tasks WHERE task_id = 'task_written_meanwhile'")
        writer.commit()
        writer.close()


def test_play_all_queues_every_result_with_audio(base: str, library: Library) -> None:
    status, headers, body = request(base, "/queue.json?source=acedata&sort=title")
    assert status == 200 and headers["content-type"] == "application/json"
    queue = json.loads(body)
    assert [item["title"] for item in queue] == ["<img src=x onerror=alert(1)>", "Paper Moon"]  # text, for textContent
    assert queue[1]["src"] == href("audio", library, "Paper Moon") and queue[1]["href"] == href("clip", library, "Paper Moon")
    assert request(base, queue[1]["src"])[0] == 200
    assert request(base, "/queue.json?q=nosuch%3Afield")[0] == 400


def test_serve_reads_a_postgresql_catalog(pg_url: str, tmp_path: Path) -> None:
    """The same pages, search and files on a fleet's PostgreSQL catalog (read through psycopg)."""
    root = tmp_path / "pg-library"
    with Simulator() as sim:
        env = clean_env(**sim.env(), ARCHIVER_DB=pg_url, ARCHIVER_CONFIG=os.devnull)
        task = sim.add_task("ccapi-suno", clips=2, steps=0, titles=["Harbour Lights", HOSTILE],
                            lyrics="[Chorus]\nHarbour lights, carry me home", audio_format="mp3")
        for args in (("add", "ccapi-suno", task), ("sync", "--until-done", "--timeout", "60", "--quiet")):
            done = subprocess.run([sys.executable, "-m", "archiver", "--library", str(root), *args], env=env,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
    with serve(root, env=env) as base:
        html = page(base, "/")
        assert 'aria-label="Play Harbour Lights"' in html
        assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
        found = page(base, "/?mode=text&q=harbour")
        assert "<mark>Harbour</mark>" in found or "<mark>harbour</mark>" in found
        audio = re.search(r'href="(/download/[^"]+)"', page(base, re.search(r'href="(/clip/[^"]+)"', html)[1]))
        assert audio is not None
        status, headers, body = request(base, audio[1].replace("/download/", "/audio/"), headers={"Range": "bytes=0-9"})
        assert status == 206 and len(body) == 10 and headers["content-range"].startswith("bytes 0-9/")


def test_a_client_that_never_finishes_its_request_head_is_dropped(library: Library,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Slow clients (a header line now and then, no token needed) are dropped when their head
    is not whole in time; a client that sends a whole request is answered meanwhile."""
    import socket
    import threading
    import time

    import uvicorn

    from archiver.readdb import ReadDB
    from archiver.web import server
    from archiver.web.app import Settings, create_app

    monkeypatch.setattr(server, "HEAD_SECONDS", 0.5)
    db_url = f"sqlite:///{library.root / 'archiver.db'}"
    app = create_app(Settings(library=library.root, open_reader=lambda: ReadDB(db_url), token=None))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, http=server.HeadDeadline, log_level="warning", access_log=False, lifespan="off")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not running.started:
            time.sleep(0.01)
        slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
        for conn in slow:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            conn.settimeout(2)
        answered = request(f"http://127.0.0.1:{port}/", "/stats")[0]
        for _ in range(3):  # a header line now and then does not keep them
            time.sleep(0.25)
            for conn in slow:
                try:
                    conn.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    pass
        dropped = []
        for conn in slow:
            try:
                dropped.append(conn.recv(100) == b"")
            except socket.timeout:  # still open, waiting for the rest of the head
                dropped.append(False)
            except OSError:  # reset: dropped
                dropped.append(True)
            conn.close()
        assert answered == 200 and all(dropped), dropped
        kept = socket.create_connection(("127.0.0.1", port))  # a keep-alive client, between its requests
        kept.sendall(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        kept.settimeout(5)
        assert kept.recv(12).startswith(b"HTTP/1.1 200")
        kept.close()
        piped = socket.create_connection(("127.0.0.1", port))  # two pipelined requests, then a trickle
        piped.sendall(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 2 + b"GET / HTTP/1.1\r\n")
        piped.settimeout(2)
        received = b""
        deadline = time.monotonic() + 5
        while received.count(b"HTTP/1.1 200") < 2 and time.monotonic() < deadline:
            received += piped.recv(65536)
        assert received.count(b"HTTP/1.1 200") == 2
        closed = False
        for _ in range(8):
            time.sleep(0.25)
            try:
                piped.sendall(b"X-Slow: 1\r\n")
                closed = piped.recv(100) == b""
            except socket.timeout:
                continue
            except OSError:
                closed = True
            if closed:
                break
        piped.close()
        assert closed
    finally:
        running.should_exit = True
        thread.join(10)
        sock.close()


def test_a_web_query_past_its_time_limit_is_stopped(library: Library) -> None:
    from archiver.errors import TooSlow
    from archiver.readdb import ReadDB

    with ReadDB(f"sqlite:///{library.root / 'archiver.db'}", time_limit=0.05) as db:
        with pytest.raises(TooSlow, match="longer than 0.05 s"):
            db.rows("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000000) "
                    "SELECT count(*) FROM n")
        assert db.rows("SELECT count(*) AS n FROM clips")[0]["n"] > 0  # the next query has its own time
