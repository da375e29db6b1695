"""Presenting rows: rich tables on a terminal, stable tab-separated text when piped, JSON, CSV.

Every human-facing output passes through here, and provider text (titles, tags, errors, lyrics)
is untrusted: an escape sequence in a title could clear the screen, retitle the window or plant
a hyperlink. `clean_line` and `clean_text` are the one place that makes such text inert:
escape sequences are removed whole, other control characters (C0, DEL, C1) and bidi overrides
vanish, and line breaks become spaces (`clean_line`, so one record stays one line) or plain
newlines (`clean_text`, for multi-line fields such as lyrics). JSON keeps every character but
escapes those that a terminal would act on (`json_text`).
"""

from __future__ import annotations

import functools
import json
import re
import sys
from typing import Any, Iterable, Sequence, TextIO

# ESC (or a C1 introducer) sequences: CSI with its parameters, string commands (OSC, DCS, SOS,
# PM, APC) up to their terminator, and the short two- or three-character escapes.
_ESCAPE_SEQUENCE = (
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[ -/]*[0-~]"
)
_INTRODUCERS = "\x1b\x9b\x90\x98\x9d\x9e\x9f"  # every sequence above starts with one of them
# Characters that reorder or hide the text around them on screen.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Characters some terminals or readers take as a line break.
_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_UNSAFE = [*range(0x00, 0x20), *range(0x7F, 0xA0), *map(ord, BIDI_CONTROLS), 0x2028, 0x2029]
_LINE = {cp: None for cp in _UNSAFE} | {ord(ch): " " for ch in "\t" + _BREAKS}
_TEXT = _LINE | {ord(ch): "\n" for ch in _BREAKS}
_JSON = {cp: f"\\u{cp:04x}" for cp in _UNSAFE if cp >= 0x7F}  # JSON itself escapes 0x00-0x1f


@functools.cache
def _pattern(source: str) -> re.Pattern[str]:
    """Compiled on first use: a command that prints no text pays nothing for it at start-up."""
    return re.compile(source)


def _without_sequences(text: str) -> str:
    """Escape sequences removed whole; text without an introducer (nearly all) needs no regex."""
    if any(introducer in text for introducer in _INTRODUCERS):
        return _pattern(_ESCAPE_SEQUENCE).sub("", text)
    return text


def clean_line(value: Any) -> str:
    """`value` as inert text on one line: no escape sequence, control or bidi character survives."""
    return _without_sequences(str(value)).translate(_LINE)


def clean_text(value: Any) -> str:
    """Like `clean_line`, but line breaks (\\r\\n, \\r, U+2028, ...) stay, as plain newlines."""
    return _without_sequences(str(value)).replace("\r\n", "\n").translate(_TEXT)


def json_text(data: Any, *, indent: int | None = 2) -> str:
    """JSON with every character kept, those a terminal would act on written as \\u escapes."""
    return _json_safe(json.dumps(data, ensure_ascii=False, indent=indent, default=str))


def length(seconds: float | None) -> str:
    """m:ss (h:mm:ss past an hour); empty when unknown."""
    if seconds is None:
        return ""
    whole = int(round(seconds))
    if whole >= 3600:
        return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    return f"{whole // 60}:{whole % 60:02d}"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return clean_line(value)


_JSON_UNSAFE = "".join(map(chr, _JSON))
_JSON_NEEDS = f"[{re.escape(_JSON_UNSAFE)}]"


def _json_safe(text: str) -> str:
    """`text` with the code points json leaves raw written as \\u escapes; a search first, as few need it."""
    if text.isascii() and "\x7f" not in text:  # both scans run at memory speed
        return text
    return text.translate(_JSON) if _pattern(_JSON_NEEDS).search(text) else text


def json_lines(objects: Iterable[str], out: TextIO) -> None:
    """A JSON array with one compact object per line (the `sqlite3 -json` layout: easy to read, to
    diff and to stream), written in 64 KiB pieces so the syscalls stay few and memory bounded
    (json.dump would write a few small strings per value, each a write(2) when stdout is
    unbuffered, as in many containers). `objects` are JSON texts; the code points json leaves raw
    that a terminal would act on are escaped here."""
    pending: list[str] = ["["]
    size, first = 1, True
    for text in objects:
        piece = ("\n" if first else ",\n") + text
        first = False
        pending.append(piece)
        size += len(piece)
        if size >= 65536:
            out.write(_json_safe("".join(pending)))
            pending, size = [], 0
    pending.append("]\n" if first else "\n]\n")
    out.write(_json_safe("".join(pending)))


def rows_json(rows: Iterable[dict[str, Any]], out: TextIO) -> None:
    """Rows as `json_lines`; the C encoder does each row in one call."""
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
    json_lines(map(encode, rows), out)


def rows_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str], out: TextIO) -> None:
    import csv  # only CSV output needs it

    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else _csv_cell(row.get(k))) for k in columns})


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")  # a seed "-42" is a number, not a formula


def _csv_cell(value: Any) -> Any:
    """CSV quotes line breaks itself, so a lyric keeps its lines; other controls go. Text a
    spreadsheet would run as a formula (a title "=HYPERLINK(…)") gets a leading ', the mark
    spreadsheets give text; numbers, signed ones too, are written as they are."""
    if not isinstance(value, str):
        return value
    text = clean_text(value)  # first: a control character in front must not hide a formula
    return "'" + text if text.startswith(_FORMULA_STARTS) and not _NUMBER.fullmatch(text) else text


def rows_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], out: TextIO | None = None,
               *, title: str | None = None, tty: bool | None = None) -> None:
    out = out or sys.stdout
    title = clean_line(title) if title is not None else None
    if tty is None:
        tty = out.isatty()
    if not tty:
        out.write("\t".join(columns) + "\n")
        for row in rows:
            out.write("\t".join(_cell(row.get(c)) for c in columns) + "\n")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold", max_width=48)
    for row in rows:
        table.add_row(*(Text(_cell(row.get(c))) for c in columns))  # titles are data, not markup
    Console(file=out).print(table)


def emit(rows: Sequence[dict[str, Any]], fmt: str, *, table_columns: Sequence[str],
         all_columns: Sequence[str], out: TextIO | None = None, title: str | None = None) -> None:
    out = out or sys.stdout
    if fmt == "json":
        rows_json(rows, out)
    elif fmt == "csv":
        rows_csv(rows, all_columns, out)
    else:
        rows_table(rows, table_columns, out, title=title)
