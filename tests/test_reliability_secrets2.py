"""Issue #12, classes 3, 6, 9 (config) and one item of 12: secrets, ids in URLs, config values, bad bytes.

Class 3: a provider that JSON-escapes the token (`\\/`, `\\u002d`, every character as `\\uXXXX`) or
percent-encodes it must not get it printed, stored or shown; `archiver config` hides passwords in
`--db` URLs and credentials in base URLs. Class 6: every id placed in a URL path arrives as exactly
one encoded segment. Class 9: absurd config values are exit 2 naming the key, never a crash and
never an echoed token. Class 12: one stray non-UTF-8 byte in a body is U+FFFD, not a failed poll.
"""

from __future__ import annotations

import html
import json
import secrets
import sqlite3
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from archiver.testkit import Lib, Loopback, no_tracebacks

from archiver.errors import UsageError
from archiver.providers import SOURCES
from archiver.providers.base import parse_json
from archiver.providers.http import join_url
from archiver.simulator import Simulator

PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
TOKEN = f"sk-live-{secrets.token_hex(12)}/{secrets.token_hex(6)}-{secrets.token_hex(6)}"
CONFIG = "connect_timeout = 2\nread_timeout = 2\nretry_budget = 2\n"
REDACTED = "<redacted>"


# ---------------------------------------------------------------------------- class 3: escaped tokens


def escaped(token: str, style: str) -> str:
    """The token as it sits inside a JSON string literal in the raw body (without the quotes)."""
    if style == "slash":  # PHP's json_encode
        return token.replace("/", "\\/")
    if style == "dash":
        return token.replace("-", "\\u002d")
    if style == "every":
        return "".join(f"\\u{ord(c):04x}" for c in token)
    if style == "upper":
        return "".join(f"\\u{ord(c):04X}" if i % 2 else c for i, c in enumerate(token))
    if style == "percent":  # a URL-encoded echo, in a plain JSON string
        return urllib.parse.quote(token, safe="")
    raise AssertionError(style)


STYLES = ("slash", "dash", "every", "upper", "percent")


def needles(token: str) -> list[str]:
    """Every spelling a leak could take in output or storage."""
    return [token, token[8:24], *(escaped(token, s) for s in STYLES), json.dumps(token)[1:-1]]


def all_rows(db: Path) -> str:
    """Every value of every table of the library database, as one text."""
    con = sqlite3.connect(db)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return "\n".join(repr(row) for name in names for row in con.execute(f'SELECT * FROM "{name}"'))
    finally:
        con.close()


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[tuple[Lib, Loopback]]:
    with Simulator() as sim, Loopback() as loop:
        yield Lib.create(sim, tmp_path / "secrets2", CONFIG), loop


@pytest.mark.parametrize("style", STYLES)
def test_escaped_token_from_a_provider_is_never_printed_stored_or_shown(
        lib: tuple[Lib, Loopback], style: str) -> None:
    library, loop = lib
    spelled = escaped(TOKEN, style)
    # A failed task whose record (values and a key) and error message carry the token, ...
    record = ('{"items": [{"id": "t-fail", "request": {"echo": "Bearer %s", "%s": 1}, "response": '
              '{"success": false, "error": {"code": "bad_key", "message": "key %s is revoked"}}}], "count": 1}'
              % (spelled, spelled, spelled))
    # ... an error answer for a whole batch, and a not-found answer for one id.
    failure = '{"error": {"code": "denied", "message": "token %s over quota"}, "%s": true}' % (spelled, spelled)
    missing = '{"error": {"code": "not_found", "message": "no task for key %s"}}' % spelled
    loop.routes["/ok/producer/tasks"] = lambda h: h.reply(200, record.encode(), "application/json")
    loop.routes["/bad/producer/tasks"] = lambda h: h.reply(400, failure.encode(), "application/json")
    loop.routes["/gone/producer/tasks"] = lambda h: h.reply(404, missing.encode(), "application/json")
    assert json.loads(record) and json.loads(failure)  # valid JSON: the provider did nothing wrong
    assert library.cli("add", "acedata", "t-fail").exit_code == 0

    env = {"ARCHIVER_ACEDATA_TOKEN": TOKEN}
    ok = library.cli("sync", "--now", "--no-download", env={**env, "ARCHIVER_ACEDATA_BASE_URL": loop.url("/ok/")})
    assert ok.exit_code == 0, ok.output
    assert library.cli("add", "acedata", "t-two", "t-three").exit_code == 0
    bad = library.cli("sync", "--now", "--no-download", env={**env, "ARCHIVER_ACEDATA_BASE_URL": loop.url("/bad/")})
    assert bad.exit_code == 1 and "over quota" in bad.output and REDACTED in bad.output, bad.output
    library.cli("sync", "--now", "--no-download", "--json",
                env={**env, "ARCHIVER_ACEDATA_BASE_URL": loop.url("/bad/")})
    assert library.cli("add", "acedata", "t-gone").exit_code == 0
    library.cli("sync", "--now", "--no-download", "--source", "acedata",
                env={**env, "ARCHIVER_ACEDATA_BASE_URL": loop.url("/gone/")})
    shown = library.cli("tasks", "--format", "json", env=env)
    library.cli("show", "t-fail", "--format", "json", env=env)

    assert all(h["authorization"] == f"Bearer {TOKEN}" for _m, _p, h, _b in loop.seen)  # it was sent ...
    (failed,) = library.query("SELECT status, error, raw_json FROM tasks WHERE task_id = 't-fail'")
    assert failed["status"] == "failed" and "is revoked" in failed["error"] and REDACTED in failed["error"]
    assert REDACTED in failed["raw_json"]
    runs = [r["error_text"] for r in library.query("SELECT error_text FROM sync_runs") if r["error_text"]]
    assert any("over quota" in text for text in runs)
    assert "t-fail" in shown.output
    stored = all_rows(library.db) + "".join(
        p.read_bytes().decode("utf-8", "replace") for p in library.root.glob("archiver.db*"))
    places = {f"output #{n}": text for n, text in enumerate(library.outputs)} | {"database": stored}
    leaks = [(where, needle) for where, text in places.items() for needle in needles(TOKEN) if needle in text]
    assert leaks == []  # ... and never came back
    assert no_tracebacks(library) == []


def test_config_hides_passwords_in_db_and_base_urls(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from archiver.cli import cli

    cfg = tmp_path / "config.toml"
    cfg.write_text('[providers.acedata]\nbase_url = "https://me:b4se-pass-word@api.example/v1/"\n'
                   '[providers.ccapi]\nbase_url = "https://only-a-user-token@api.example/"\n', encoding="utf-8")
    cfg.chmod(0o600)
    db_urls = ["postgresql+psycopg://archiver:db-s3cret-pw@db.example:5432/music",
               "postgresql://u:p@ss/w0rd-x@db.example/music?sslmode=require"]
    hidden = ["b4se-pass-word", "only-a-user-token", "db-s3cret-pw", "p@ss/w0rd-x", "ss/w0rd"]
    for db in db_urls:
        for fmt in ("table", "json"):
            result = CliRunner().invoke(cli, ["--config", str(cfg), "--library", str(tmp_path / "lib"), "--db", db,
                                              "config", "--format", fmt],
                                        env={"ARCHIVER_MOUNTSEA_BASE_URL": "http://x:env-pass-word@127.0.0.1:9/"})
            assert result.exit_code == 0, result.output
            assert [h for h in [*hidden, "env-pass-word"] if h in result.output] == []
            assert "db.example" in result.output and "api.example/v1/" in result.output  # the rest stays
            assert REDACTED in result.output


@given(token=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=8, max_size=40),
       choices=st.lists(st.sampled_from(["raw", "u", "U", "slash", "pct"]), min_size=40, max_size=40),
       before=st.text(max_size=20), after=st.text(max_size=20))
@PROPERTY
def test_redact_finds_the_token_in_any_json_spelling(token: str, choices: list[str], before: str,
                                                     after: str) -> None:
    from archiver.redact import Redactor, redact

    def spell(char: str, how: str) -> str:
        if how in ("u", "raw", "pct") and char in '"\\':  # never raw inside a JSON string
            return f"\\u{ord(char):04x}"
        if how == "u":
            return f"\\u{ord(char):04x}"
        if how == "U":
            return f"\\u{ord(char):04X}"
        if how == "slash" and char in '/"\\':
            return "\\" + char
        return char

    literal = "".join(spell(c, how) for c, how in zip(token, choices))
    body = ('{"message": %s, "k": "%s", "%s": [%s]}' % (json.dumps(before + token + after), literal, literal,
                                                        json.dumps(after))).encode()
    payload = parse_json(body, secrets=[token])
    strings = [*payload, *(v for v in payload.values() if isinstance(v, str)), *payload.get(REDACTED, [])]
    assert all(token not in s for s in strings) and payload["k"] == REDACTED
    assert token not in Redactor([token]).text(json.dumps(payload))
    pct = "".join(urllib.parse.quote(c, safe="") if how == "pct" else c for c, how in zip(token, choices))
    assert redact(f"{before} {pct} {after}", [token]).count(REDACTED) >= 1
    references = "".join(f"&#{ord(c)};" if how == "u" else f"&#x{ord(c):x};" if how == "U" else html.escape(c)
                         for c, how in zip(token, choices))  # an HTML error page echoing the request
    assert token not in redact(f"<p>{before}{references}{after}</p>", [token]).replace(html.escape(before), "")
    assert redact(f"<p>{references}</p>", [token]) == f"<p>{REDACTED}</p>"


@given(token=st.text(st.sampled_from("ab9-_\n\t\r\x08\x0c\U0001f3b5\U00010348é"), min_size=8, max_size=24),
       ascii_only=st.booleans())
@PROPERTY
def test_redact_finds_a_token_behind_short_escapes_and_surrogate_pairs(token: str, ascii_only: bool) -> None:
    """The spellings the token's pattern cannot see in the undecoded body (\\n, \\t, ... and a
    surrogate pair for a character beyond the BMP) still never come through."""
    body = json.dumps({"message": f"echo {token} back", token: [token]}, ensure_ascii=ascii_only).encode()
    payload = parse_json(body, secrets=[token])
    assert token not in json.dumps(payload, ensure_ascii=False) and REDACTED in payload["message"]


@pytest.mark.parametrize("secrets_", [["sk-live-0123456789"], ["sk-live-0123456789", "db&pass<word"]])
def test_ampersands_of_signed_urls_keep_the_plain_search(secrets_: list[str]) -> None:
    """Media links are full of `&` (and lyrics of `&#39;` now and then): only a reference that
    could spell a secret's character sends a body through the full pattern."""
    from archiver.redact import Redactor

    class Refuses:
        def search(self, text: str) -> None:
            raise AssertionError("the full pattern searched a body no escape could hide a secret in")

    scrub = Redactor(secrets_)
    scrub._pattern = Refuses()  # type: ignore[assignment]
    body = '{"audio_url": "https://cdn.example/a.mp3?X-Amz-Expires=600&X-Amz-Signature=ab12", "n": "R&B"}'
    assert scrub.holds_secret(body) is False
    assert Redactor(secrets_).holds_secret(body.replace("ab12", "&#115;k-live-0123456789")) is True


def test_a_body_whose_escapes_cannot_hide_the_token_is_not_walked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lyrics full of \\n do not make every string of a poll's body go through the redactor when
    the token cannot hide behind such escapes: the undecoded body is searched once instead."""
    from archiver.redact import Redactor

    def walked(self: Redactor, value: object) -> object:
        raise AssertionError("the decoded body was walked")

    monkeypatch.setattr(Redactor, "value", walked)
    body = rb'{"lyrics": "[Verse]\nla la\n\"quoted\"\t\u00e9", "title": "a\/b"}'
    assert parse_json(body, secrets=["sk-live-0123456789"]) == json.loads(body)
    monkeypatch.undo()
    leaked = json.dumps({"lyrics": "la\nsk-live-0123456789"}).encode()
    assert parse_json(leaked, secrets=["sk-live-0123456789"]) == {"lyrics": f"la\n{REDACTED}"}


@given(secrets_=st.lists(st.text(st.sampled_from('sk9/"\\&<'), min_size=4, max_size=8), min_size=1, max_size=3),
       spellings=st.lists(st.sampled_from(["raw"] * 3 + ["slash"] * 3 + ["u", "U", "pct", "pct", "drop", "dec",
                                                                      "hex", "named"]),
                          min_size=10, max_size=10),
       before=st.text(st.sampled_from('sk-9a/"\\%u0d\n&#;x'), max_size=8),
       after=st.text(st.sampled_from('sk-9a/"\\%u0d\n&#;x'), max_size=8))
@settings(PROPERTY, max_examples=1000)
def test_the_plain_text_shortcut_finds_what_the_pattern_finds(secrets_: list[str], spellings: list[str],
                                                               before: str, after: str) -> None:
    """A body without the marks of an escaped spelling is searched for the plain secrets only:
    the answer is the full pattern's, whatever the text (a secret spelled any way, or broken)."""
    from archiver.redact import Redactor

    def spell(char: str, how: str) -> str:
        return {"u": f"\\u{ord(char):04x}", "U": f"\\u{ord(char):04X}", "pct": f"%{ord(char):02x}",
                "slash": "\\" + char if char in '/"\\' else char, "drop": "", "dec": f"&#{ord(char)};",
                "hex": f"&#x{ord(char):X};", "named": html.escape(char)}.get(how, char)

    scrub = Redactor(secrets_)
    text = before + "".join(spell(c, how) for c, how in zip(secrets_[0], spellings)) + after
    expected = scrub._pattern is not None and scrub._pattern.search(text) is not None
    assert scrub.holds_secret(text) is expected


@given(text=st.text(st.characters(blacklist_characters="%\\&", blacklist_categories=("Cs",)), max_size=60),
       token=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=8, max_size=20))
@PROPERTY
def test_redact_leaves_text_without_secrets_alone(text: str, token: str) -> None:
    from archiver.redact import Redactor

    if token in text or "://" in text:
        return
    assert Redactor([token]).text(text) == text


@given(user=st.text(st.characters(blacklist_characters=":/?#@", blacklist_categories=("Cs", "Zs", "Cc")),
                    max_size=10),
       password=st.text(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1,
                        max_size=20))
@PROPERTY
def test_redact_url_hides_any_password(user: str, password: str) -> None:
    from archiver.redact import redact, redact_url

    url = f"postgresql+psycopg://{user}:{password}@db.host:5432/music"
    assert redact_url(url) == f"postgresql+psycopg://{user}:{REDACTED}@db.host:5432/music"
    assert redact(f"cannot connect to {url}: refused") == f"cannot connect to {redact_url(url)}: refused"


# ---------------------------------------------------------------------------- class 6: ids in URLs

HOSTILE_IDS = ["../../x", "a?x=1", "a#b", "%2e%2e", "%2E%2E", "a b", "ünï/cødé", "a/../b", "..x", ".x", "x.",
               "a\\b", "a;b=c", "a&b", "+plus+", "💿"]
REFUSED_AT_ADD = ["..", ".", "a\x01b", "a\x7fb", "a\x1b[31mred", "line\u2028sep"]


def recorder(seen: list[str], reply: bytes) -> Callable[[Any], None]:
    def route(h: Any) -> None:
        seen.append(h.path)  # the raw request target, query included
        h.reply(200, reply, "application/json")
    return route


def test_hostile_ids_arrive_as_exactly_one_encoded_segment(lib: tuple[Lib, Loopback]) -> None:
    library, loop = lib
    seen: list[str] = []
    loop.fallback = recorder(seen, b'{"code": 200, "data": [], "message": "ok"}')
    for task_id in HOSTILE_IDS:
        assert library.cli("add", "aimusicapi", task_id).exit_code == 0, task_id
    for task_id in REFUSED_AT_ADD:
        result = library.cli("add", "aimusicapi", task_id)
        assert result.exit_code == 2 and "task id" in result.output and "\x1b" not in result.output, result.output
    # An id that slipped in another way (a saved body) is refused at poll time, never sent.
    body = library.config.parent / "saved.json"
    body.write_text('{"code": 200, "data": []}', encoding="utf-8")
    for task_id in ("..", "a\x01b"):
        assert library.cli("import", "--task-id", task_id, str(body)).exit_code == 0
    result = library.cli("sync", "--now", "--no-download", "--source", "aimusicapi",
                         env={"ARCHIVER_AIMUSICAPI_BASE_URL": loop.url("/")})
    assert result.exit_code in (0, 1), result.output
    expected = {f"/api/v1/producer/task/{urllib.parse.quote(i, safe='')}" for i in HOSTILE_IDS}
    assert sorted(seen) == sorted(expected)
    assert {urllib.parse.unquote(p.rsplit("/", 1)[1]) for p in seen} == set(HOSTILE_IDS)
    known = {r["task_id"] for r in library.query("SELECT task_id FROM tasks")}
    assert known == {*HOSTILE_IDS, "..", "a\x01b"}  # nothing refused was half-added
    assert no_tracebacks(library) == []


def test_ids_in_a_query_string_arrive_whole(lib: tuple[Lib, Loopback]) -> None:
    """MountSea puts the id in `?taskId=`: `&`, `#`, `=` and `+` must stay inside the value."""
    library, loop = lib
    seen: list[str] = []
    loop.fallback = recorder(seen, b'{"taskId": "x", "status": "processing"}')
    ids = ["a&taskId=b", "c#d", "e=f", "g+h i", "../../x"]
    for task_id in ids:
        assert library.cli("add", "mountsea", task_id).exit_code == 0
    library.cli("sync", "--now", "--no-download", "--source", "mountsea",
                env={"ARCHIVER_MOUNTSEA_BASE_URL": loop.url("/")})
    assert {p.split("?", 1)[0] for p in seen} == {"/producer/tasks"}
    assert sorted(urllib.parse.parse_qs(p.split("?", 1)[1])["taskId"][0] for p in seen) == sorted(ids)
    assert all(len(urllib.parse.parse_qs(p.split("?", 1)[1])["taskId"]) == 1 for p in seen)


@given(task_id=st.text(min_size=1, max_size=30))
@PROPERTY
def test_any_id_is_one_path_segment_or_refused(task_id: str) -> None:
    source = SOURCES["aimusicapi"]
    base = "https://api.example/prefix/"
    controls = any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f or c in "\u2028\u2029" or 0xd800 <= ord(c) <= 0xdfff
                   for c in task_id)
    if controls or task_id in (".", ".."):
        with pytest.raises(UsageError):
            source.request_for([task_id])
        return
    url = httpx.URL(join_url(base, source.request_for([task_id]).path))
    prefix = b"/prefix/api/v1/producer/task/"
    assert url.raw_path.startswith(prefix)
    segment = url.raw_path[len(prefix):]
    assert b"/" not in segment and b"?" not in segment and b"#" not in segment
    assert urllib.parse.unquote(segment.decode("ascii")) == task_id
    assert url.host == "api.example"


# ---------------------------------------------------------------------------- class 9: config values

BAD_CONFIG = [
    ('artist = "{0}"', "artist"),
    ('album = "{source"', "album"),
    ('artist = "{source.__class__}"', "artist"),
    ('album = "{title[0]}"', "album"),
    ('artist = "{nope}"', "artist"),
    ('artist = "{title:{style}}"', "artist"),
    ('artist = "{title:d}"', "artist"),
    ("connect_timeout = inf", "connect_timeout"),
    ("read_timeout = nan", "read_timeout"),
    ("max_backoff = -inf", "max_backoff"),
    ("connect_timeout = 1e300", "connect_timeout"),
    ("providers = [1, 2]", "providers"),
    ('providers = "ccapi"', "providers"),
    ("[providers]\nccapi = 5", "providers.ccapi"),
    ("[providers.acedata]\ninterval = inf", "providers.acedata.interval"),
    ('[providers.ccapi]\ntoken = "sk-caf\u00e9-SECRETPART"', "providers.ccapi.token"),
    ('[providers.ccapi]\ntoken = "sk-two SECRETPART"', "providers.ccapi.token"),
    ('[providers.ccapi]\ntoken = "sk-line\\nSECRETPART"', "providers.ccapi.token"),
    ('[providers.ccapi]\ntoken = "sk-tab\\tSECRETPART"', "providers.ccapi.token"),
]


def run_config(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Any:
    from click.testing import CliRunner

    from archiver.cli import cli

    cfg = tmp_path / "config.toml"
    cfg.write_text(text + "\n", encoding="utf-8")
    cfg.chmod(0o600)
    return CliRunner().invoke(cli, ["--config", str(cfg), "--library", str(tmp_path / "lib"), "config"], env=env)


@pytest.mark.parametrize("text, key", BAD_CONFIG)
def test_absurd_config_values_are_exit_2_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    result = run_config(tmp_path, text)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # handled, not a crash
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and key in lines[0], result.output
    assert "SECRETPART" not in result.output


@pytest.mark.parametrize("value", ["sk-caf\u00e9-SECRETPART", "sk-two SECRETPART", "sk\nSECRETPART", "sk\tSECRETPART"])
def test_bad_token_from_the_environment_is_a_config_error(tmp_path: Path, value: str) -> None:
    result = run_config(tmp_path, "", env={"ARCHIVER_ACEDATA_TOKEN": value})
    assert result.exit_code == 2 and "ARCHIVER_ACEDATA_TOKEN" in result.output, result.output
    assert "SECRETPART" not in result.output and len(result.output.strip().splitlines()) == 1


def test_good_templates_and_numbers_still_load(tmp_path: Path) -> None:
    result = run_config(tmp_path, 'artist = "{model} / {style}"\nalbum = "{source}: {title!r:>5} {{literal}}"\n'
                                  "connect_timeout = 0.5\nread_timeout = 86400\n"
                                  '[providers.ccapi]\ntoken = "sk-ok_~!token.123"\ninterval = 12')
    assert result.exit_code == 0, result.output
    assert "{model} / {style}" in result.output and "sk-ok_~!token.123" not in result.output


# ---------------------------------------------------------------------------- class 12: a stray byte


@pytest.mark.parametrize("where", ["title", "lyric", "key"])
def test_a_stray_invalid_utf8_byte_is_replaced_not_a_poll_failure(lib: tuple[Lib, Loopback], where: str) -> None:
    library, loop = lib
    clip = {"id": "c-1", "title": "Caf@ song", "lyric": "la @ la", "state": "succeeded",
            "audio_url": loop.url("/a.mp3")}
    if where == "title":
        clip["lyric"] = "la la"
    elif where == "lyric":
        clip["title"] = "Cafe song"
    else:
        clip.update({"title": "Cafe song", "lyric": "la la", "odd@key": 1})
    body = json.dumps({"id": "t-1", "response": {"task_id": "t-1", "data": [clip]}}).encode().replace(b"@", b"\xff")
    loop.routes["/api/producer/tasks"] = lambda h: h.reply(200, body, "application/json; charset=utf-8")
    assert library.cli("add", "acedata", "t-1").exit_code == 0
    code, summary = library.sync("--no-download", env={"ARCHIVER_ACEDATA_BASE_URL": loop.url("/api/")}, once=True)
    assert code == 0 and summary["errors"] == [], library.outputs[-1]
    (task,) = library.query("SELECT status FROM tasks")
    (stored,) = library.query("SELECT title, lyrics FROM clips")
    assert task["status"] == "succeeded"
    assert (stored["title"], stored["lyrics"]) == {
        "title": ("Caf\ufffd song", "la la"), "lyric": ("Cafe song", "la \ufffd la"),
        "key": ("Cafe song", "la la")}[where]
    assert no_tracebacks(library) == []


def test_parse_json_replaces_bad_bytes_and_keeps_good_ones() -> None:
    assert parse_json(b'{"t": "a\xffb", "\xfe": "\xc3\xa9"}') == {"t": "a\ufffdb", "\ufffd": "\u00e9"}
    assert parse_json('{"t": "\\ud83c x"}'.encode()) == {"t": "\ufffd x"}
    with pytest.raises(ValueError):
        parse_json(b"\xff not json")


@given(token=st.lists(st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=16, max_size=48,
                      unique=True).map("".join),
       data=st.data(), before=st.text(max_size=20), after=st.text(max_size=20))
@PROPERTY
def test_a_long_piece_of_the_token_is_redacted_with_it(token: str, data: st.DataObject, before: str,
                                                       after: str) -> None:
    """An error that echoes the token cut short (or wrapped inside it) shows none of the piece."""
    from archiver.redact import PIECE, Redactor

    shortest = max(PIECE, len(token) // 2)
    start = data.draw(st.integers(0, len(token) - shortest))
    piece = token[start:data.draw(st.integers(start + shortest, len(token)))]
    scrub = Redactor([token])
    text = f"{before} {piece} {after}"
    assert scrub.holds_secret(text) and piece not in scrub.text(text) and REDACTED in scrub.text(text)
    shorter = token[start:start + shortest - 1]  # below half the token: ordinary text is left alone
    assert scrub.text(f"id {shorter[:PIECE - 1]} ok") == f"id {shorter[:PIECE - 1]} ok"
