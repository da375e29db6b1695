"""What the pages show, prepared from the read path: Jinja2 with autoescape, text made inert by
render.clean_line/clean_text, search snippets with their marks, lyrics split into sections and
the songs-per-month chart as SVG geometry (the template draws it)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from ..library import SNIPPET_MARKS
from ..render import clean_line, clean_text, length

PAGE_SIZE = 60
SORTS: dict[str, str] = {
    "created-": "Newest first", "created": "Oldest first", "title": "Title", "duration": "Shortest first",
    "duration-": "Longest first", "source": "Source", "model": "Model",
}
DURATIONS: dict[str, str] = {
    "..60": "Under 1 min", "60..180": "1 to 3 min", "180..300": "3 to 5 min", "300..": "Over 5 min",
}
FILTERS = ("source", "model", "status", "year", "duration")
_SECTION = re.compile(r"^\s*\[([^\]]{1,60})\]\s*$")


def text(value: Any) -> str:
    """Provider text as one inert line; nothing for a missing value."""
    return "" if value is None else clean_line(value)


def day(value: str | None) -> str:
    return clean_line(value[:10]) if value else ""


def moment(value: str | None) -> str:
    return clean_line(value[:19].replace("T", " ")) if value else ""


def human_bytes(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def title_of(row: Mapping[str, Any]) -> str:
    """What a clip is called on screen and in `Play <title>`: its title, else its id."""
    return clean_line(row.get("title") or "").strip() or clean_line(row.get("clip_id") or "untitled")


def clip_path(kind: str, source: str, ident: str) -> str:
    """/<kind>/<source>/<id>, each part percent-encoded: every link to a clip, task or file."""
    return f"/{kind}/{quote(str(source), safe='')}/{quote(str(ident), safe='')}"


def clip_url(kind: str, row: Mapping[str, Any]) -> str:
    return clip_path(kind, row["source"], row["clip_id"])


def snippet(text: str | None) -> Markup:
    """A search snippet with its matches in <mark>, everything else escaped."""
    if not text:
        return Markup("")
    opened, closed = SNIPPET_MARKS
    out: list[str] = []
    for i, piece in enumerate(re.split(f"[{opened}{closed}]", clean_line(text))):
        out.append(f"<mark>{escape(piece)}</mark>" if i % 2 else str(escape(piece)))
    return Markup("".join(out))


@dataclass(frozen=True)
class Section:
    heading: str | None
    lines: tuple[str, ...]


def lyrics_sections(lyrics: str | None) -> list[Section]:
    """Lyrics split at `[Chorus]`-style lines, which become the headings of their sections."""
    sections: list[Section] = []
    heading: str | None = None
    lines: list[str] = []
    for line in clean_text(lyrics or "").split("\n"):
        match = _SECTION.match(line)
        if match:
            if heading is not None or any(x.strip() for x in lines):
                sections.append(Section(heading, tuple(lines)))
            heading, lines = match[1].strip(), []
        else:
            lines.append(line)
    if heading is not None or any(x.strip() for x in lines):
        sections.append(Section(heading, tuple(lines)))
    return [Section(s.heading, _trim(s.lines)) for s in sections]


def _trim(lines: Sequence[str]) -> tuple[str, ...]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return tuple(lines[start:end])


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    count: int
    tick: bool  # the month gets a label under the axis


def month_chart(months: Sequence[tuple[str, int]], *, width: float = 720, height: float = 220) -> dict[str, Any]:
    """Bar geometry for songs per month: every month from the first to the last, empty ones too,
    and at least the twelve months up to the last, so a young library still reads as a timeline."""
    filled: list[tuple[str, int]] = []
    if months:
        counts = dict(months)
        last = months[-1][0]
        end_year, end_month = (int(p) for p in last.split("-"))
        year, month = (int(p) for p in months[0][0].split("-"))
        if (end_year * 12 + end_month) - (year * 12 + month) < 11:
            total = end_year * 12 + end_month - 1 - 11
            year, month = total // 12, total % 12 + 1
        while True:
            key = f"{year:04d}-{month:02d}"
            filled.append((key, counts.get(key, 0)))
            if key >= last or len(filled) >= 600:
                break
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    top = max((c for _, c in filled), default=0) or 1
    left, bottom, plot_h = 40.0, 30.0, height - 40.0
    step = min(56.0, (width - left - 10) / max(1, len(filled)))
    every = max(1, -(-len(filled) // 12))
    bars = [Bar(left + i * step + step * 0.1, 10 + plot_h - plot_h * c / top, step * 0.8, plot_h * c / top,
                key, c, i % every == 0) for i, (key, c) in enumerate(filled)]
    return {"bars": bars, "width": width, "height": height, "top": top, "axis_y": 10 + plot_h,
            "left": left, "bottom": bottom, "total": sum(c for _, c in filled)}


def query_terms(q: str) -> list[str]:
    """The search field as `ls` arguments: shell-like words, so title:"two words" is one term."""
    try:
        return shlex.split(q)
    except ValueError:  # an unbalanced quote: plain words
        return q.split()


def filter_terms(params: Mapping[str, str]) -> list[str]:
    """The filter controls as `ls` terms (exact values, so a model filter is not a substring)."""
    terms = []
    for name in ("source", "model", "status"):
        if params.get(name):
            terms.append(f"{name}:={params[name]}")
    if params.get("year"):
        terms.append(f"year:{params['year']}")
    if params.get("duration"):
        terms.append(f"duration:{params['duration']}")
    return terms


def link(path: str, params: Mapping[str, Any], **changes: Any) -> str:
    """`path` with the current parameters, some changed (None drops one); empty ones left out."""
    merged = {**params, **changes}
    kept = {k: v for k, v in merged.items() if v not in (None, "")}
    return path + ("?" + urlencode(kept) if kept else "")


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(Path(__file__).parent / "templates")),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(clean=text, mmss=length, day=day, moment=moment, bytes=human_bytes,
                       snippet=snippet)
    env.globals.update(title_of=title_of, link=link, clip_path=clip_path, SORTS=SORTS, DURATIONS=DURATIONS)
    return env
