"""Library paths must stay portable, bounded and inside the root whatever a provider sends."""

from __future__ import annotations

import os
import unicodedata
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pathvalidate import validate_filename

from archiver.errors import ArchiverError, ConfigError, UsageError
from archiver.paths import (
    DEFAULT_TEMPLATE,
    TEMPLATE_FIELDS,
    clip_fields,
    render_relpath,
    resolve_inside,
    sanitize_component,
    sibling,
    unique_relpath,
    validate_template,
)
from archiver.records import ClipRecord

EXAMPLES = int(os.environ.get("ARCHIVER_HYPOTHESIS_EXAMPLES", "300"))
CLIP_ID = "3f2a9c1d-1111-2222-3333-444455556666"
WHEN = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)


def fields_for(title: Any = "Night", clip_id: str = CLIP_ID, **extra: Any) -> dict[str, Any]:
    clip = ClipRecord(
        clip_id=clip_id, title=title, tags="pop, light, clean", model="chirp-v4",
        created_at=extra.pop("created_at", WHEN), **extra,
    )
    return clip_fields(clip, source="suno", task_id="task-1")


def render(
    title: Any, template: str = DEFAULT_TEMPLATE, ext: str = "mp3", **kw: Any
) -> PurePosixPath:
    return render_relpath(template, fields_for(title, **kw), ext)


def assert_safe(rel: PurePosixPath, clip_id: str = CLIP_ID) -> None:
    """The invariants every rendered path must satisfy."""
    assert not rel.is_absolute()
    assert rel.parts
    for part in rel.parts:
        assert part not in ("", ".", "..")
        assert part == part.strip(" .")
        assert len(part.encode("utf-8")) <= 255
        assert unicodedata.is_normalized("NFC", part)
        assert not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in part)
        assert "/" not in part and "\\" not in part
        validate_filename(part, platform="universal")
    assert clip_id[:8] in rel.name
    assert len(sibling(rel, "jpeg").name.encode("utf-8")) <= 255


# ------------------------------------------------------------------ layout and fields


def test_default_layout() -> None:
    assert render("Night Drive") == PurePosixPath("suno/2024/2024-05-01 Night Drive [3f2a9c1d].mp3")
    assert "{clip_id:.8}" in DEFAULT_TEMPLATE


def test_clip_fields_cover_template_fields() -> None:
    fields = fields_for(seed="42", duration=61.5)
    assert set(fields) | {"ext"} == TEMPLATE_FIELDS
    assert fields["style"] == "pop" and fields["created"] == WHEN and fields["seed"] == "42"


@pytest.mark.parametrize("tags, style", [("pop, light", "pop"), (" , jazz", "jazz"), (None, None)])
def test_style_is_first_tag(tags: str | None, style: str | None) -> None:
    fields = clip_fields(ClipRecord(clip_id="c", tags=tags), source="s", task_id="t")
    assert fields["style"] == style
    rel = render_relpath("{style}/{clip_id}.{ext}", fields, "mp3")
    assert rel.parts[0] == (style or "unknown")


def test_created_none_renders_unknown() -> None:
    template = "{created:%Y}/{created:%Y-%m} {title} [{clip_id:.8}].{ext}"
    rel = render("Song", template, created_at=None)
    assert rel == PurePosixPath("unknown/unknown Song [3f2a9c1d].mp3")


def test_other_fields_and_specs() -> None:
    template = "{model}/{duration:.0f}s {seed} {title!r} [{clip_id}].{ext}"
    rel = render("Song", template, seed="7", duration=61.5)
    assert rel == PurePosixPath(f"chirp-v4/62s 7 'Song' [{CLIP_ID}].mp3")


def test_missing_ext_is_appended() -> None:
    assert validate_template("{source}/{title}") == "{source}/{title}.{ext}"
    assert render("Song", "{source}/{title}", ext="m4a") == PurePosixPath("suno/Song.m4a")


def test_slash_from_a_strftime_spec_is_not_a_directory() -> None:
    assert render("S", "{created:%Y/%m} {title}.{ext}") == PurePosixPath("2024_05 S.mp3")


@pytest.mark.parametrize("ext", ["MP3", ".mp3", "", "mp3/../x", "m p3", "a" * 11, "mp3\x00"])
def test_bad_ext_rejected(ext: str) -> None:
    with pytest.raises(ValueError):
        render("Song", ext=ext)
    with pytest.raises(ValueError):
        sibling(PurePosixPath("a/b.mp3"), ext)


def test_sibling_swaps_only_last_extension() -> None:
    rel = render("v1.2 mix")
    assert rel.name == "2024-05-01 v1.2 mix [3f2a9c1d].mp3"
    assert sibling(rel, "jpg") == rel.parent / "2024-05-01 v1.2 mix [3f2a9c1d].jpg"
    assert sibling(PurePosixPath("x/noext"), "png") == PurePosixPath("x/noext.png")


# ------------------------------------------------------------------ bad templates


@pytest.mark.parametrize(
    "template",
    [
        "../{title}.{ext}", "/abs/{title}.{ext}", "a/../{title}", "./{title}", "a//{title}",
        "{title}/.{ext}", "C:/{title}", "a\\{title}", "{title", "{title}}x{", "{}", "{0}",
        "{title.__class__}", "{title[0]}", "{title:{width}}", "{duration:d}", "{title!x}", "  ",
    ],
)
def test_bad_templates_are_config_errors(template: str) -> None:
    with pytest.raises(ConfigError):
        validate_template(template)
    with pytest.raises(ConfigError):
        render_relpath(template, fields_for(), "mp3")


def test_unknown_field_names_it_and_lists_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        validate_template("{artist}/{title}.{ext}")
    message = str(info.value)
    assert "artist" in message and all(name in message for name in TEMPLATE_FIELDS)
    assert info.value.exit_code == 2


def test_template_dots_inside_a_component_are_rendered_then_sanitized() -> None:
    rel = render("x", "..{title}/{clip_id:.8}.{ext}")
    assert rel == PurePosixPath("x/3f2a9c1d.mp3")


def test_huge_literal_text_is_still_bounded() -> None:
    rel = render("Song", "x" * 300 + "/" + "y" * 300 + " {title} [{clip_id:.8}]")
    assert all(len(p.encode()) <= 255 for p in rel.parts) and rel.suffix == ".mp3"


# ------------------------------------------------------------------ hostile titles


@pytest.mark.parametrize(
    "title, expected_title",
    [
        ("AC/DC", "AC_DC"),
        ("/", "_"),
        ("..", CLIP_ID),
        ("../../etc/passwd", "_.._etc_passwd"),
        ("back\\slash", "back_slash"),
        ("a\tb\n\nc\r\nd", "a b c d"),
        ("nu\x00ll\x07", "null"),
        ("  ..hidden. . ", "hidden"),
        ("what?*:<>|\"", "what"),
        ("e\u0301te\u0301", "\u00e9t\u00e9"),
        ("spoof\u202eevil\u200f", "spoofevil"),
        ("🎵 Song 🎶", "🎵 Song 🎶"),
        ("", CLIP_ID),
        ("   \t ", CLIP_ID),
        ("\x00\x01...", CLIP_ID),
        (None, CLIP_ID),
        ("bad\ud800half", "bad\ufffdhalf"),
        ("CON", "CON"),
    ],
)
def test_hostile_titles(title: Any, expected_title: str) -> None:
    rel = render(title)
    assert_safe(rel)
    assert len(rel.parts) == 3
    assert rel.name == f"2024-05-01 {expected_title} [3f2a9c1d].mp3"


@pytest.mark.parametrize("name, expected", [("CON", "CON_"), ("nul", "nul_"), ("COM1", "COM1_"),
                                            ("lpt9", "lpt9_"), ("con.txt", "con_.txt"),
                                            ("NUL .mp3", "NUL_ .mp3"), ("CONSOLE", "CONSOLE")])
def test_reserved_device_names(name: str, expected: str) -> None:
    assert sanitize_component(name) == expected
    rel = render(name, "{title}/{clip_id:.8}.{ext}")
    assert rel.parts[0] == expected
    validate_filename(rel.parts[0], platform="universal")


@pytest.mark.parametrize(
    "unit", ["x", "é", "😀", "👍🏽", "🇺🇸", "q\u0323\u0301", "👨\u200d👩\u200d👧", "한"]
)
def test_long_titles_keep_clip_id_and_graphemes(unit: str) -> None:
    for ext in ("mp3", "m4a"):
        rel = render(unit * 300, ext=ext)
        assert_safe(rel)
        assert rel.name.endswith(f" [3f2a9c1d].{ext}")
        kept = rel.name[len("2024-05-01 ") : -len(f" [3f2a9c1d].{ext}")]
        assert kept and kept == unit * (len(kept) // len(unit))  # whole graphemes only


def test_long_title_without_clip_prefix_template_still_fits() -> None:
    rel = render("😀" * 300, "{title}/{clip_id}.{ext}", clip_id="x" * 300)
    assert all(len(p.encode()) <= 255 for p in rel.parts) and rel.suffix == ".mp3"


def test_platform_linux_keeps_colons_but_not_separators_or_controls() -> None:
    rel = render_relpath(DEFAULT_TEMPLATE, fields_for("a:b/c\td"), "mp3", platform="linux")
    assert rel.name == "2024-05-01 a:b_c d [3f2a9c1d].mp3"


def test_sanitize_component_rejects_silly_budgets() -> None:
    with pytest.raises(ValueError):
        sanitize_component("x", max_bytes=300)


# ------------------------------------------------------------------ collisions


def test_duplicates_get_distinct_paths() -> None:
    a, b = "3f2a9c1d-aaaa", "3f2a9c1d-bbbb"
    first = render("Same", clip_id=a)
    second = render("Same", clip_id=b)
    assert first == second
    taken = {str(first)}
    second = unique_relpath(second, b, taken.__contains__)
    assert second != first and b in second.name and second.suffix == ".mp3"
    assert unique_relpath(first, a, lambda _: False) == first


def test_unique_relpath_walks_short_id_full_id_then_counter() -> None:
    rel = PurePosixPath("suno/Song.mp3")
    seen: list[str] = []

    def taken(candidate: str) -> bool:
        seen.append(candidate)
        return len(seen) < 5

    result = unique_relpath(rel, CLIP_ID, taken)
    assert seen[:4] == [
        "suno/Song.mp3",
        "suno/Song [3f2a9c1d].mp3",
        f"suno/Song [{CLIP_ID}].mp3",
        f"suno/Song [{CLIP_ID}] (2).mp3",
    ]
    assert str(result) == f"suno/Song [{CLIP_ID}] (3).mp3"


def test_unique_relpath_stays_bounded_and_gives_up_eventually() -> None:
    rel = render("😀" * 300)
    free = unique_relpath(rel, CLIP_ID, lambda c: c == str(rel))
    assert_safe(free)
    with pytest.raises(ArchiverError):
        unique_relpath(PurePosixPath("a.mp3"), "c", lambda _: True)


# ------------------------------------------------------------------ staying inside the root


def test_resolve_inside_normal(tmp_path: Path) -> None:
    rel = render("Song")
    assert resolve_inside(tmp_path, rel) == tmp_path.resolve() / rel


@pytest.mark.parametrize("rel", ["../x.mp3", "a/../../x.mp3", "/etc/passwd", "."])
def test_resolve_inside_rejects_escapes(tmp_path: Path, rel: str) -> None:
    with pytest.raises(UsageError):
        resolve_inside(tmp_path, PurePosixPath(rel))


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlinks_pointing_outside_are_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "lib", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    try:
        (root / "suno").symlink_to(outside, target_is_directory=True)
        (root / "leaf.mp3").symlink_to(outside / "victim.mp3")
        (root / "inner").symlink_to(root / "real", target_is_directory=True)
    except OSError:
        pytest.skip("symlinks not permitted")
    (root / "real").mkdir()
    with pytest.raises(UsageError):
        resolve_inside(root, PurePosixPath("suno/2024/x.mp3"))
    with pytest.raises(UsageError):
        resolve_inside(root, PurePosixPath("leaf.mp3"))
    assert resolve_inside(root, PurePosixPath("inner/x.mp3")) == (root / "real" / "x.mp3").resolve()


def _realpath_verdict(root: Path, rel: PurePosixPath) -> Path | None:
    """The rule `resolve_inside` keeps, spelled with full `realpath` walks: None = refused."""
    base = root.resolve()
    try:
        parent = base.joinpath(*rel.parts).parent.resolve()
        landed = (parent / rel.name).resolve()
    except RuntimeError:  # a link loop
        return None
    inside = parent == base or base in parent.parents
    return parent / rel.name if inside and base in landed.parents else None


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(links=st.lists(st.tuples(st.sampled_from(["a", "a/b", "c", "a/b/s.mp3", "c/s.mp3"]),
                                st.sampled_from(["in", "out", "root", "up", "loop"])), max_size=3, unique_by=lambda t: t[0]),
       rel=st.sampled_from(["a/b/s.mp3", "a/s.mp3", "c/s.mp3", "c/d/e/s.mp3", "s.mp3", "a/b/c/s.mp3"]))
def test_resolve_inside_agrees_with_realpath_on_planted_links(tmp_path_factory: Any, links: list[tuple[str, str]],
                                                              rel: str) -> None:
    """Whatever links are planted on the way, the quick per-component check gives the verdict
    and the path that walking every link with realpath gives."""
    top = tmp_path_factory.mktemp("tree")
    root, outside = top / "lib", top / "outside"
    (root / "in").mkdir(parents=True)
    outside.mkdir()
    targets = {"in": root / "in", "out": outside, "root": root, "up": top, "loop": root / "loop-x"}
    for where, to in sorted(links, key=lambda link: link[0].count("/")):
        path = root / where
        if path.parent.is_dir() and not path.parent.is_symlink() and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(targets[to])
    (root / "loop-x").symlink_to(root / "loop-x")
    expected = _realpath_verdict(root, PurePosixPath(rel))
    if expected is None:
        with pytest.raises(UsageError):
            resolve_inside(root, PurePosixPath(rel))
    else:
        assert resolve_inside(root, PurePosixPath(rel)) == expected
        assert resolve_inside(root, PurePosixPath(rel), base=root.resolve()) == expected


# ------------------------------------------------------------------ properties

HOSTILE = [
    "/", "\\", "..", ".", " ", "\t", "\n", "\r", "\x00", "\x1f", "\x7f", "\x85", "\u2028", "\u00a0",
    "CON", "nul", "COM1", ":", "*", "?", '"', "<", ">", "|", "{title}", "%Y", "[", "]",
    "\u0301", "\u200d", "\u202e", "\ufeff", "\ud800", "\udfff", "e\u0301", "\u1112\u1161", "한",
    "😀", "👍🏽", "🇺🇸", "\U0001f1fa", "x" * 90, "😀" * 70,
]
titles = st.one_of(
    st.none(),
    st.text(),
    st.lists(st.one_of(st.sampled_from(HOSTILE), st.characters()), max_size=120).map("".join),
)
clip_ids = st.text(alphabet="abcdefABCDEF0123456789-_xyz", min_size=1, max_size=64)
templates = st.sampled_from([
    DEFAULT_TEMPLATE,
    "{title}",
    "{title}/{style} {title} [{clip_id:.8}]",
    "{source}/{model}/{created:%Y-%m}/{tags} - {title} - {clip_id}.{ext}",
    "..{title}../ {title} /{title}.{clip_id}.{ext}",
])
created = st.one_of(st.none(), st.datetimes(timezones=st.just(timezone.utc)))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("library")


@PROPERTY
@given(title=titles, clip_id=clip_ids, template=templates, when=created, tags=titles,
       ext=st.sampled_from(["mp3", "m4a", "wav", "flac", "jpg"]))
def test_property_rendered_paths_are_safe(
    library: Path, title: str | None, clip_id: str, template: str, when: datetime | None,
    tags: str | None, ext: str,
) -> None:
    clip = ClipRecord(clip_id=clip_id, title=title, tags=tags, created_at=when, model=title)
    rel = render_relpath(template, clip_fields(clip, source="suno", task_id="t"), ext)
    assert rel.suffix == f".{ext}"
    if "{clip_id" in template:
        assert_safe(rel, clip_id)
    else:
        assert_safe(rel, "")
    assert sibling(rel, "png").stem == rel.stem
    target = resolve_inside(library, rel)
    assert target.is_relative_to(library.resolve()) and target != library.resolve()
    taken = {str(rel), str(unique_relpath(rel, clip_id, lambda c: c == str(rel)))}
    third = unique_relpath(rel, clip_id, taken.__contains__)
    assert str(third) not in taken
    assert_safe(third, clip_id)


@PROPERTY
@given(value=titles, max_bytes=st.integers(min_value=8, max_value=255))
def test_property_sanitize_component(value: str | None, max_bytes: int) -> None:
    result = sanitize_component(str(value or ""), max_bytes=max_bytes)
    assert len(result.encode("utf-8")) <= max_bytes
    assert sanitize_component(result, max_bytes=max_bytes) == result  # idempotent
    if result:
        assert result == result.strip(" .") and unicodedata.is_normalized("NFC", result)
        validate_filename(result, platform="universal")


_PLAIN_ALPHABET = "abcXYZ0189_-,'()!&+#@=~[] ." + ':*?"<>|\\/%$^;{}`\t'  # the last ones are never plain


@settings(max_examples=400, deadline=None)
@given(text=st.text(alphabet=_PLAIN_ALPHABET, max_size=40) | st.sampled_from(
    ["Echoes in the Stairwell", "con", "CON.mp3", "lpt1", "a..b", "Vol. 2", "v1.2 mix", "x" * 300]),
    platform=st.sampled_from(["universal", "windows", "linux", "macos"]), max_bytes=st.integers(8, 255))
def test_the_plain_text_shortcut_gives_what_every_rule_gives(text: str, platform: str, max_bytes: int) -> None:
    """sanitize_component returns plain text untouched without running its rules: for any such
    text, the rules (ours, then pathvalidate's, then ours again) would have returned it unchanged."""
    from pathvalidate import sanitize_filename
    from pathvalidate.handler import ReservedNameHandler

    from archiver.paths import _PLAIN, _settle, _unreserve

    if not (len(text) <= max_bytes and _PLAIN.fullmatch(text) and _unreserve(text) == text):
        return
    ruled = _settle(text, platform, max_bytes)
    assert ruled == text
    assert str(sanitize_filename(ruled, platform=platform, max_len=max_bytes, fs_encoding="utf-8",
                                 reserved_name_handler=ReservedNameHandler.add_trailing_underscore)) == text
    assert sanitize_component(text, platform=platform, max_bytes=max_bytes) == text
