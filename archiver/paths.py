"""Where each clip lands in the library: template rendering and hostile-name sanitizing.

Default layout (``DEFAULT_TEMPLATE``)::

    {source}/{created:%Y}/{created:%Y-%m-%d} {title} [{clip_id:.8}].{ext}

e.g. ``suno/2024/2024-05-01 Night Drive [3f2a9c1d].mp3``; the cover sits beside it with the same
stem and its own extension (``... [3f2a9c1d].jpg``, see `sibling`).

``path_template`` uses Python ``str.format`` syntax with format specs. Fields: see
``TEMPLATE_FIELDS``. ``created`` is a datetime and takes strftime specs (``{created:%Y-%m}``); it
renders as ``unknown`` when the clip has no time, as does any other missing field. ``style`` is the
first of the comma-separated ``tags``. Only ``/`` written in the template separates directories: a
``/`` that comes out of a value (a title "AC/DC", even a strftime spec) becomes ``_``. A template
must end with ``.{ext}``; it is appended when missing. Absolute templates, ``..``/``.``/empty
components, backslashes, positional or attribute fields are configuration errors.

Every rendered component is sanitized (pathvalidate, platform "universal" by default, plus the
rules in `sanitize_component`) and kept within 255 UTF-8 bytes by shortening the longest free-text
value (normally the title), never the clip id or the extension. File stems leave room for any
extension up to ``MAX_EXT_LEN`` so `sibling` and `unique_relpath` never overflow.
"""

from __future__ import annotations

import os
import re
import stat
import string
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, Mapping

from .errors import ArchiverError, ConfigError, UsageError
from .fields import CLIP_TABLE

DEFAULT_TEMPLATE = "{source}/{created:%Y}/{created:%Y-%m-%d} {title} [{clip_id:.8}].{ext}"

# Template name -> clip attribute, from the clip-field table; `style` is derived from `tags`.
_CLIP_ATTRS: dict[str, str] = {f.template: f.name for f in CLIP_TABLE if f.template is not None}
TEMPLATE_FIELDS = frozenset({"source", "task_id", "style", "ext", *_CLIP_ATTRS})

MAX_COMPONENT_BYTES = 255
MAX_EXT_LEN = 10
# A stem leaves room for "." plus the longest allowed extension, so swapping it never overflows.
_STEM_BUDGET = MAX_COMPONENT_BYTES - 1 - MAX_EXT_LEN
UNKNOWN = "unknown"
_NEVER_SHRUNK = frozenset({"clip_id", "ext"})

_EXT = re.compile(r"[a-z0-9]{1,%d}" % MAX_EXT_LEN)
_SURROGATE = re.compile("[\ud800-\udfff]")
# Invisible characters that reorder or hide text, or that make two names look alike: a spoofing
# risk in file names, never needed there. Bidi controls, then zero-width ones and the soft hyphen.
_DROP = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
                  "\u200b\u200c\u2060\ufeff\u180e\u00ad")
_ZWJ = "\u200d"
# Emoji blocks, for telling a ZWJ sequence (family, rainbow flag) from a stray zero-width joiner.
_PICTOGRAPHIC = ((0x1F000, 0x1FAFF), (0x2190, 0x21FF), (0x2300, 0x23FF), (0x25A0, 0x27BF),
                 (0x2900, 0x297F), (0x2B00, 0x2BFF), (0x3030, 0x3030), (0x303D, 0x303D),
                 (0x3297, 0x3299), (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C),
                 (0x2049, 0x2049), (0x2122, 0x2122), (0x2139, 0x2139))
# What may sit between an emoji and the ZWJ that joins it: variation selectors, skin tones.
_EMOJI_MODIFIERS = ((0xFE00, 0xFE0F), (0x1F3FB, 0x1F3FF), (0xE0020, 0xE007F))
_WINDOWS_INVALID = frozenset(':*?"<>|')
# Text made only of these, with single spaces and no dot or space at either end, is a component
# already: no rule here or in pathvalidate changes it (a property test holds the shortcut to that).
_PLAIN = re.compile(r"[A-Za-z0-9_\-,'()!&+#@=~\[\]]+(?:[ .][A-Za-z0-9_\-,'()!&+#@=~\[\]]+)*")
# Characters our own rules remove per pathvalidate platform (others get the strict Windows set).
_PLATFORM_INVALID = {"linux": frozenset(""), "posix": frozenset(""), "macos": frozenset(":")}
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CLOCK$", "CONIN$", "CONOUT$"}
    | {f"{dev}{n}" for dev in ("COM", "LPT") for n in (*"0123456789", "\u00b9", "\u00b2", "\u00b3")}
)
# Typed example values: a format spec that fails on these is a template error, caught up front.
_SAMPLE: dict[str, Any] = dict(
    source="suno", task_id="task-1", clip_id="0123456789abcdef", title="Title", tags="pop, rock",
    style="pop", negative_tags="metal", lyrics="la la", duration=123.45, model="chirp-v4",
    seed="42", created=datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
)


@dataclass(frozen=True)
class _Field:
    name: str
    spec: str
    conversion: str | None


_Part = str | _Field
_Component = tuple[_Part, ...]


# ---------------------------------------------------------------- character-level rules


def _in(ch: str, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(lo <= ord(ch) <= hi for lo, hi in ranges)


def _joins_emoji(text: str, i: int) -> bool:
    """True when the ZWJ at `i` sits inside an emoji ZWJ sequence (emoji, modifiers, ZWJ, emoji)."""
    before = i - 1
    while before >= 0 and _in(text[before], _EMOJI_MODIFIERS):
        before -= 1
    after = i + 1
    return (before >= 0 and after < len(text) and _in(text[before], _PICTOGRAPHIC)
            and _in(text[after], _PICTOGRAPHIC) and not _in(text[after], _EMOJI_MODIFIERS))


def _scrub(text: str, platform: str = "universal") -> str:
    """Our own rules minus length and reserved names; idempotent."""
    invalid = _PLATFORM_INVALID.get(str(platform).lower(), _WINDOWS_INVALID)
    for _ in range(4):
        before = text
        text = unicodedata.normalize("NFC", _SURROGATE.sub("\ufffd", text))
        kept: list[str] = []
        for i, ch in enumerate(text):
            if ch in _DROP or ch in invalid or (ch == _ZWJ and not _joins_emoji(text, i)):
                continue
            if ch in "/\\":
                kept.append("_")  # a value never creates a directory
            elif unicodedata.category(ch) == "Cc":
                if ch.isspace():
                    kept.append(" ")  # tabs and newlines separate words; NUL & co. vanish
            else:
                kept.append(ch)
        text = " ".join("".join(kept).split()).strip(" .")
        text = unicodedata.normalize("NFC", text)
        if text == before:
            break
    return text


def _unreserve(name: str) -> str:
    """Windows device names ("CON", "nul.txt", "COM1 .mp3") get an underscore after the device."""
    base = name.split(".", 1)[0].rstrip(" ")
    if base.upper() in _RESERVED:
        return base + "_" + name[len(base) :]
    return name


# ZWJ, variation selectors, skin tones, emoji tag letters, Hangul medial vowels/final consonants.
_EXTENDERS = ((0x200D, 0x200D), (0xFE00, 0xFE0F), (0x1F3FB, 0x1F3FF), (0xE0020, 0xE007F),
              (0xE0100, 0xE01EF), (0x1160, 0x11FF))


def _extends(ch: str) -> bool:
    """True when `ch` belongs to the grapheme before it, so no cut may go before it."""
    cp = ord(ch)
    return unicodedata.category(ch) in ("Mn", "Mc", "Me") or any(
        lo <= cp <= hi for lo, hi in _EXTENDERS
    )


def _is_regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _cut(text: str, max_bytes: int) -> str:
    """Longest prefix within `max_bytes` UTF-8 bytes that does not split a grapheme cluster."""
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    best = used = regional = 0
    for i, ch in enumerate(text):
        prev = text[i - 1] if i else ""
        joined = i and (
            _extends(ch)
            or prev == "\u200d"
            or (_is_regional(prev) and _is_regional(ch) and regional % 2 == 1)
            or (0x1100 <= ord(prev) <= 0x115F and 0x1100 <= ord(ch) <= 0x11FF)
        )
        if not joined:
            best = i
        used += len(ch.encode("utf-8"))
        if used > max_bytes:
            return text[:best]
        regional = regional + 1 if _is_regional(ch) else 0
    return text


def _settle(text: str, platform: str, max_bytes: int) -> str:
    """Apply scrub, reserved-name and length rules until nothing changes."""
    for _ in range(16):
        new = _cut(_unreserve(_scrub(text, platform)), max_bytes)
        if new == text:
            return new
        text = new
    raise AssertionError(f"sanitizing did not settle: {text!r}")  # pragma: no cover


def sanitize_component(value: str, *, platform: str = "universal", max_bytes: int = 255) -> str:
    """One safe path component from untrusted text; "" when nothing usable is left.

    NFC; surrogates become U+FFFD; tabs/newlines become spaces and other control characters
    (NUL included), bidi overrides, zero-width characters and soft hyphens vanish (a ZWJ stays
    only between two emoji, where it builds one: 👨‍👩‍👧); ``/`` and ``\\`` become ``_``; characters invalid on
    `platform` are removed (pathvalidate); whitespace runs collapse; no leading or trailing dots or
    spaces (so never ``.`` or ``..``); device names get ``_`` (``CON`` -> ``CON_``); at most
    `max_bytes` UTF-8 bytes, cut between grapheme clusters.
    """
    if not 8 <= max_bytes <= MAX_COMPONENT_BYTES:
        raise ValueError(f"max_bytes must be between 8 and {MAX_COMPONENT_BYTES}")
    text = str(value)
    if len(text) <= max_bytes and _PLAIN.fullmatch(text) and _unreserve(text) == text:
        return text  # an everyday title, as most are: nothing below would change it
    text = _settle(text, platform, max_bytes)
    if not text:
        return ""
    # here, not at the top: checking a template (every command whose config sets one) needs none of it
    from pathvalidate import ValidationError, sanitize_filename
    from pathvalidate.handler import ReservedNameHandler

    try:
        text = str(sanitize_filename(
            text, platform=platform, max_len=max_bytes, fs_encoding="utf-8",
            reserved_name_handler=ReservedNameHandler.add_trailing_underscore,
        ))
    except ValidationError:
        pass  # our own rules above already cover every universal restriction
    return _settle(text, platform, max_bytes)


# ---------------------------------------------------------------- templates
# Three kinds of template share str.format syntax and string.Formatter's parser, each checked
# before any clip is touched, but not one renderer, because what a value may become differs: a
# path is rendered here component by component, every value sanitized and shortened to fit 255
# bytes, a missing value "unknown"; a one-line `--format` template (rowtemplate.template_renderer)
# shows any listed field as text, a missing one blank; a tag template (`artist`, `album`: checked by
# config.tag_template_problem, filled by retag.tag_data) sees only config.TAG_FIELDS, never a path.


@lru_cache(maxsize=64)
def _compile(template: str) -> tuple[str, tuple[_Component, ...]]:
    """Validate `template` once; return it normalized plus its components (ext implied)."""
    if not isinstance(template, str) or not template.strip():
        raise ConfigError("it is empty")
    template = unicodedata.normalize("NFC", template.strip())
    if "\\" in template:
        raise ConfigError("use '/' to separate directories, not '\\'")
    if template.startswith("/") or re.match(r"[A-Za-z]:", template):
        raise ConfigError("it must be relative to the library")
    items = _parse(template)
    last = items[-1]
    if not (last[1] == "ext" and last[2] == "" and last[3] is None and last[0].endswith(".")):
        template += ".{ext}"
        items = _parse(template)
        last = items[-1]
    items = [*items[:-1], (last[0][:-1], None, None, None)]  # ".{ext}" is re-added on render

    components: list[list[_Part]] = [[]]
    for literal, name, spec, conversion in items:
        pieces = literal.split("/")
        components[-1].append(pieces[0])
        for piece in pieces[1:]:
            components.append([piece])
        if name is not None:
            components[-1].append(_check_field(name, spec or "", conversion))
    for component in components:
        if all(isinstance(part, str) for part in component):
            text = "".join(part for part in component if isinstance(part, str))
            if not _scrub(text):
                raise ConfigError("it has an empty, '.' or '..' part")
    return template, tuple(tuple(p for p in c if p != "") for c in components)


def _parse(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    try:
        return list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"it cannot be parsed: {exc}") from None


def _check_field(name: str, spec: str, conversion: str | None) -> _Field:
    """Reject what str.format would accept but we must not: positional, attribute, nested."""
    valid = ", ".join(sorted(TEMPLATE_FIELDS))
    if name not in TEMPLATE_FIELDS:
        raise ConfigError(f"unknown field {{{name}}}; valid fields: {valid}")
    if conversion not in (None, "s", "r", "a"):
        raise ConfigError(f"bad conversion !{conversion} on {{{name}}}")
    if "{" in spec or "}" in spec:
        raise ConfigError(f"nested fields in the spec of {{{name}}}")
    field = _Field(name, spec, conversion)
    try:
        _format(field, _SAMPLE, "mp3", strict=True)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ConfigError(f"bad format spec for {{{name}}}: {exc}") from None
    return field


def validate_template(template: str) -> str:
    """The normalized template (``.{ext}`` appended when missing); ConfigError if unusable."""
    return _compiled(template)[0]


def template_problem(template: str) -> str | None:
    """Why `template` cannot lay out files, None when it can: config checks it wherever it is set."""
    try:
        _compile(template)
    except ConfigError as exc:
        return str(exc)
    return None


def _compiled(template: str) -> tuple[str, tuple[_Component, ...]]:
    if not isinstance(template, str):
        raise ConfigError(f"path_template must be a string, not {type(template).__name__}")
    try:
        return _compile(template)
    except ConfigError as exc:
        raise ConfigError(f"path_template = {template!r} is not a valid template: {exc}") from None


def _format(field: _Field, fields: Mapping[str, Any], ext: str, *, strict: bool = False) -> str:
    """One field's text before sanitizing; missing values render as "unknown" (title as "")."""
    raw = ext if field.name == "ext" else fields.get(field.name)
    spec = field.spec
    if field.name == "created":
        if not isinstance(raw, date):
            return UNKNOWN
        spec = spec or ("%Y-%m-%d" if field.conversion is None else "")
    elif raw is None or (isinstance(raw, str) and not raw.strip()):
        return "" if field.name == "title" else UNKNOWN
    value = string.Formatter().convert_field(raw, field.conversion)
    try:
        return format(value, spec)
    except (ValueError, TypeError, OverflowError):
        if strict:
            raise
        return str(value)  # a provider sent another type than documented: keep the data


def check_ext(ext: str) -> str:
    """Extensions are short lowercase alphanumerics, so they never need sanitizing."""
    if not isinstance(ext, str) or not _EXT.fullmatch(ext):
        raise ValueError(f"bad file extension {ext!r}: want 1-{MAX_EXT_LEN} of [a-z0-9]")
    return ext


def clip_fields(clip: Any, *, source: str, task_id: str) -> dict[str, Any]:
    """Template fields of a ClipRecord-like object (``style`` is the first tag)."""
    fields: dict[str, Any] = {name: getattr(clip, attr, None) for name, attr in _CLIP_ATTRS.items()}
    fields.update(source=source, task_id=task_id)
    tags = fields["tags"]
    candidates = tags.split(",") if isinstance(tags, str) else list(tags or ())
    fields["style"] = next((str(t).strip() for t in candidates if str(t).strip()), None)
    return fields


def render_relpath(
    template: str, fields: Mapping[str, Any], ext: str, *, platform: str = "universal"
) -> PurePosixPath:
    """Relative path for one file; every component sanitized, bounded, clip id kept."""
    check_ext(ext)
    _, components = _compiled(template)
    clip_id = _scrub(str(fields.get("clip_id") or ""), platform)
    names: list[str] = []
    for index, component in enumerate(components):
        is_stem = index == len(components) - 1
        budget = _STEM_BUDGET if is_stem else MAX_COMPONENT_BYTES
        name = _fit(component, fields, ext, clip_id, platform, budget)
        if not name:
            name = sanitize_component(clip_id or "untitled", platform=platform, max_bytes=budget)
            name = name if is_stem else UNKNOWN
        names.append(f"{name}.{ext}" if is_stem else name)
    return PurePosixPath(*names)


def _fit(
    component: _Component, fields: Mapping[str, Any], ext: str, clip_id: str, platform: str,
    budget: int,
) -> str:
    """Render one component, shortening the longest free-text value until it fits `budget`."""
    values: dict[int, str] = {}
    shrinkable: set[int] = set()
    for i, part in enumerate(component):
        if isinstance(part, _Field):
            if part.name not in _NEVER_SHRUNK:
                shrinkable.add(i)
            text = _cut(_scrub(_format(part, fields, ext), platform), MAX_COMPONENT_BYTES)
            if part.name == "title" and not text:
                text = clip_id  # an empty or all-junk title falls back to the clip id
            values[i] = text

    def joined() -> str:
        return "".join(values[i] if i in values else str(p) for i, p in enumerate(component))

    while True:
        over = len(_unreserve(_scrub(joined(), platform)).encode("utf-8")) - budget
        candidates = [i for i in shrinkable if values[i]]
        if over <= 0 or not candidates:
            break
        i = max(candidates, key=lambda k: len(values[k].encode("utf-8")))
        size = len(values[i].encode("utf-8"))
        values[i] = _cut(values[i], max(0, size - over)).rstrip(" .")
    return sanitize_component(joined(), platform=platform, max_bytes=budget)


# ---------------------------------------------------------------- placing files


def _split_name(name: str) -> tuple[str, str]:
    """(stem, ext) swapping only the final extension: "v1.2 mix.mp3" -> ("v1.2 mix", "mp3")."""
    stem, dot, ext = name.rpartition(".")
    return (stem, ext) if dot and stem else (name, "")


def sibling(rel: PurePosixPath, ext: str) -> PurePosixPath:
    """Same directory and stem, other extension: the cover beside its audio file."""
    check_ext(ext)
    stem, _ = _split_name(rel.name)
    return rel.with_name(f"{stem}.{ext}")


def _suffixes(clip_id: str, stem: str) -> Iterator[str]:
    short, full = f" [{clip_id[:8]}]", f" [{clip_id}]"
    if not stem.endswith(short):
        yield short
    if full != short:
        yield full
    for counter in range(2, 100_000):
        yield f"{full} ({counter})"


def unique_relpath(rel: PurePosixPath, clip_id: str, taken: Callable[[str], bool]) -> PurePosixPath:
    """`rel`, or the first free variant with " [<clip8>]", " [<clip id>]", then a counter."""
    if not taken(str(rel)):
        return rel
    stem, ext = _split_name(rel.name)
    budget = _STEM_BUDGET if ext else MAX_COMPONENT_BYTES
    safe_id = sanitize_component(clip_id, max_bytes=budget - 20) or "clip"
    for suffix in _suffixes(safe_id, stem):
        head = _cut(stem, budget - len(suffix.encode("utf-8"))).rstrip(" .")
        name = _unreserve((head + suffix).strip(" "))
        candidate = rel.with_name(f"{name}.{ext}" if ext else name)
        if not taken(str(candidate)):
            return candidate
    raise ArchiverError(f"no free file name for clip {clip_id} near {rel}")


def _no_links(base: Path, parts: tuple[str, ...]) -> bool:
    """True when no component of `parts` below `base` is a link, so the joined path is already
    its own real path: one lstat per component instead of three full `realpath` walks."""
    path = str(base)
    for part in parts:
        path = f"{path}/{part}"
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return True  # nothing exists from here on, so nothing can lead elsewhere
        except OSError:
            return False  # not a folder on the way, unreadable: the full check decides
        if stat.S_ISLNK(mode):
            return False
    return True


def _within(path: Path, base: Path, *, strict: bool) -> bool:
    p, b = os.path.normcase(str(path)), os.path.normcase(str(base))
    try:
        inside = os.path.commonpath([p, b]) == b
    except ValueError:  # different drives
        return False
    return inside and not (strict and p == b)


def resolve_inside(root: Path, rel: PurePosixPath, *, base: Path | None = None) -> Path:
    """Absolute path of `rel` under `root`; UsageError if it (or a symlink on the way) escapes.

    `base` is `root` already resolved (a caller placing many files resolves it once).
    """
    rel = PurePosixPath(rel)
    if rel.is_absolute() or not rel.parts or ".." in rel.parts:
        raise UsageError(f"refusing path outside the library: {str(rel)!r}")
    try:
        base = base or Path(root).resolve()
        target = base.joinpath(*rel.parts)
        if os.name != "nt" and _no_links(base, rel.parts):  # a Windows junction is no S_ISLNK
            return target
        parent = target.parent.resolve()
        final = parent / target.name
        landed = final.resolve()
    except (OSError, RuntimeError) as exc:  # symlink loops, unreadable directories
        raise UsageError(f"cannot resolve {str(rel)!r} under {root}: {exc}") from None
    if not (_within(parent, base, strict=False) and _within(landed, base, strict=True)):
        raise UsageError(f"{str(rel)!r} escapes the library root {base} (symlink?)")
    return final
