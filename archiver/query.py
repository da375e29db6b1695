"""The browse query language, compiled to one parameterized SQL WHERE / ORDER BY.

Beets-style terms, all ANDed:

    rain                  bare word: case-insensitive substring of title, tags or lyrics
    title:rain            substring of one field (`title:=Rain` for a whole-value match)
    title:=               the field is empty (`title:` alone is a usage error: a value was forgotten)
    task:7f11             id fields match by prefix
    duration:120..180     closed range (seconds or m:ss); `120..` or `..180` open either side
    created:2026-03..     dates: YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM, each a whole period
    year:2025..2026       years, inclusive
    ^source:acedata       `^` negates any term; `^rain` too

Values are always bound parameters, never spliced into the SQL. The SQL is SQLite's unless the
dialect is "postgresql": ILIKE instead of LIKE plus a folding function, lower() for NOCASE, and
the full-text query of pgsearch.py instead of FTS5's MATCH. The column names below refer
to the aliases of library.CLIP_FROM (c = clips, t = tasks, au = downloaded audio asset). The
clip's own fields, and how each matches, come from the clip-field table (fields.CLIP_TABLE).
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from .errors import UsageError
from .fields import CLIP_TABLE, ClipField

FOLD_FUNCTION = "archiver_fold"  # SQL function name; see register_functions


class Field:
    """A queryable field: its SQL expression, how values match, and how it sorts (plain classes,
    this and Compiled: every read command loads this module, and a dataclass or NamedTuple costs
    far more to define)."""

    __slots__ = ("column", "kind", "name", "sort")

    def __init__(self, name: str, column: str, kind: str, sort: str | None = None) -> None:
        self.name, self.column = name, column
        self.kind = kind  # text | id | number | date | year | flag
        self.sort = sort  # SQL to order by; defaults to `column`


def _clip_field(row: ClipField) -> Field:
    assert row.query is not None
    column = f"c.{row.name}"
    return Field(row.query_name or row.name, column, row.query,
                 sort=f"{column} COLLATE NOCASE" if row.folded_sort else None)


FIELDS: dict[str, Field] = {f.name: f for f in (
    Field("source", "c.source", "text"),
    Field("status", "t.status", "text"),
    *(_clip_field(row) for row in CLIP_TABLE if row.query is not None),
    Field("task", "t.task_id", "id"),
    Field("year", "c.created_at", "year"),
    Field("path", "au.path", "text"),
    Field("downloaded", "au.id", "flag", sort="au.id IS NULL"),
)}

ALIASES = {"style": "tags", "genre": "tags", "lyric": "lyrics", "task_id": "task", "clip_id": "clip",
           "created_at": "created", "date": "created", "length": "duration", "audio_path": "path"}

BARE_COLUMNS = ("c.title", "c.tags", "c.lyrics")
DEFAULT_ORDER = "c.created_at, c.source, c.clip_id"
MAX_TERMS = 500
MAX_TERM_CHARS = 1000
MAX_SEARCH_WORDS = 64


@functools.cache
def _pattern(source: str) -> re.Pattern[str]:
    """Compiled on first use, so importing this module costs no regex compile."""
    return re.compile(source)


_FIELD_NAME = r"^[A-Za-z_]+$"


def field_names() -> str:
    return ", ".join(sorted(FIELDS))


def lookup(name: str) -> Field:
    """The field called `name` (or an alias of it); UsageError naming the valid ones otherwise."""
    key = name.lower()
    key = ALIASES.get(key, key)
    if key not in FIELDS:
        raise UsageError(f"unknown field {name!r}; valid fields: {field_names()}")
    return FIELDS[key]


def fold(value: Any) -> str | None:
    """Unicode-aware case folding for SQL, where LIKE folds ASCII only."""
    if value is None:
        return None
    return unicodedata.normalize("NFC", str(value)).casefold()


def register_functions(dbapi_conn: Any) -> None:
    """Make `archiver_fold()` available on a raw sqlite3 connection (idempotent, cheap)."""
    dbapi_conn.create_function(FOLD_FUNCTION, 1, fold, deterministic=True)


class Compiled:
    """A WHERE expression ("" for no condition) and its bound parameters."""

    def __init__(self, where: str = "", params: dict[str, Any] | None = None, dialect: str = "sqlite") -> None:
        self.where = where
        self.params: dict[str, Any] = {} if params is None else params
        self.dialect = dialect

    def bind(self, value: Any) -> str:
        name = f"q{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def clause(self, prefix: str = " WHERE ") -> str:
        return f"{prefix}{self.where}" if self.where else ""


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def prefix_bounds(prefix: str) -> tuple[str, str | None]:
    """(low, high): every text that SQLite's `LIKE 'prefix%'` matches is >= low and < high (no end
    when None) in its BINARY order, so an index on the column can find them without a full scan.

    LIKE folds ASCII letters only, and BINARY compares code points: a match lies between the prefix
    in capitals and the prefix in small letters with its last character one higher.
    """
    small = prefix.translate(_ASCII_LOWER)
    after = ord(small[-1]) + 1 if small else 0x110000
    after = 0xE000 if 0xD800 <= after < 0xE000 else after  # no surrogate is text
    return prefix.translate(_ASCII_UPPER), small[:-1] + chr(after) if after <= 0x10FFFF else None


def _like(q: Compiled, column: str, needle: str, *, pattern: str) -> str:
    """`pattern` is "%{}%" (substring), "{}%" (prefix) or "{}" (whole value), case-insensitive."""
    if q.dialect == "postgresql":  # ILIKE folds case by the database's locale, beyond ASCII
        return f"{column} ILIKE {q.bind(pattern.format(_escape_like(needle)))} ESCAPE '\\'"
    if needle.isascii():
        return f"{column} LIKE {q.bind(pattern.format(_escape_like(needle)))} ESCAPE '\\'"
    folded = fold(needle) or ""
    if pattern == "%{}%":
        return f"instr({FOLD_FUNCTION}({column}), {q.bind(folded)}) > 0"
    if pattern == "{}%":
        return f"substr({FOLD_FUNCTION}({column}), 1, {len(folded)}) = {q.bind(folded)}"
    return f"{FOLD_FUNCTION}({column}) = {q.bind(folded)}"


def _seconds(text: str, term: str) -> float:
    """Seconds from `135`, `135.5` or `2:15`."""
    try:
        if ":" in text:
            minutes, _, rest = text.partition(":")
            seconds = int(minutes) * 60 + float(rest)
        else:
            seconds = float(text)
    except (ValueError, OverflowError):  # overflow: minutes past float's range
        seconds = math.nan
    if not math.isfinite(seconds):
        raise UsageError(f"{term!r}: expected seconds or m:ss, e.g. duration:120..180 or duration:2:00..3:00")
    return seconds


_DATE = r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2})(?:[T ](\d{1,2})(?::(\d{1,2}))?)?)?)?$"


def _period(text: str, term: str) -> tuple[datetime, datetime]:
    """[start, end) of a partial ISO date: 2026 is the whole year, 2026-03 the whole month."""
    match = _pattern(_DATE).match(text.strip())
    if not match:
        raise UsageError(f"{term!r}: expected a date like 2026, 2026-03, 2026-03-13 or 2026-03-13T07:00")
    year, month, day, hour, minute = (int(p) if p else None for p in match.groups())
    try:
        start = datetime(year or 1, month or 1, day or 1, hour or 0, minute or 0, tzinfo=timezone.utc)
    except (ValueError, OverflowError) as exc:
        raise UsageError(f"{term!r}: {exc}") from None
    try:
        if month is None:
            end = start.replace(year=start.year + 1)
        elif day is None:
            end = (start.replace(year=start.year + 1, month=1) if start.month == 12
                   else start.replace(month=start.month + 1))
        else:
            end = start + (timedelta(days=1) if hour is None else
                           timedelta(hours=1) if minute is None else timedelta(minutes=1))
    except (ValueError, OverflowError):  # the period runs to the end of year 9999
        end = datetime.max.replace(tzinfo=timezone.utc)
    return start, end


def _iso(value: datetime) -> str:
    # the exact spelling models.UTCDateTime stores, so text comparison is time comparison
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _range(value: str) -> tuple[str | None, str | None] | None:
    if ".." not in value:
        return None
    low, _, high = value.partition("..")
    return (low.strip() or None, high.strip() or None)


_EXAMPLES = {"text": "WORD", "id": "PREFIX", "number": "120..180", "date": "2026-03", "year": "2025",
             "flag": "yes"}


def _field_clause(q: Compiled, fld: Field, value: str, term: str) -> str:
    column = fld.column
    if not value.strip():
        name = term.lstrip("^").partition(":")[0]
        empty = f", or {name}:= for clips where it is empty" if fld.kind in ("text", "id") else ""
        raise UsageError(f"{term!r} has no value; give one, e.g. {name}:{_EXAMPLES[fld.kind]}{empty}")
    if fld.kind in ("text", "id"):
        if value == "=":
            return f"({column} IS NULL OR {column} = '')"
        if value.startswith("="):
            return _like(q, column, value[1:], pattern="{}")
        return _like(q, column, value, pattern="{}%" if fld.kind == "id" else "%{}%")
    if fld.kind == "flag":
        truth = value.lower()
        if truth in ("yes", "true", "1", "y"):
            return f"{column} IS NOT NULL"
        if truth in ("no", "false", "0", "n"):
            return f"{column} IS NULL"
        raise UsageError(f"{term!r}: expected yes or no")
    bounds = _range(value)
    if fld.kind == "number":
        if bounds is None:
            seconds = _seconds(value, term)  # whole seconds: duration:120 is 120.0 up to 120.99
            return f"({column} >= {q.bind(seconds)} AND {column} < {q.bind(seconds + 1)})"
        parts = []
        if bounds[0] is not None:
            parts.append(f"{column} >= {q.bind(_seconds(bounds[0], term))}")
        if bounds[1] is not None:
            parts.append(f"{column} <= {q.bind(_seconds(bounds[1], term))}")
        return "(" + " AND ".join(parts) + ")" if parts else f"{column} IS NOT NULL"
    # date or year: compare ISO text; `2026-03` alone is the range 2026-03..2026-03
    low, high = bounds if bounds is not None else (value, value)
    parts = []
    if low is not None:
        parts.append(f"{column} >= {q.bind(_iso(_date_span(fld, low, term)[0]))}")
    if high is not None:
        parts.append(f"{column} < {q.bind(_iso(_date_span(fld, high, term)[1]))}")
    return "(" + " AND ".join(parts) + ")" if parts else f"{column} IS NOT NULL"


def _date_span(fld: Field, text: str, term: str) -> tuple[datetime, datetime]:
    if fld.kind == "year" and not re.fullmatch(r"\d{4}", text.strip()):
        raise UsageError(f"{term!r}: expected a year like 2025 or a range like 2025..2026")
    return _period(text, term)


def _term_clause(q: Compiled, term: str) -> str | None:
    negate = term.startswith("^")
    body = term[1:] if negate else term
    if not body:
        if negate:
            raise UsageError("'^' must be followed by a term to exclude, e.g. ^source:acedata")
        return None
    name, colon, value = body.partition(":")
    if colon and _pattern(_FIELD_NAME).match(name):
        clause = _field_clause(q, lookup(name), value, term)
    else:
        clause = "(" + " OR ".join(_like(q, column, body, pattern="%{}%") for column in BARE_COLUMNS) + ")"
    # NOT over NULL is NULL: a negated term must keep rows whose field is empty
    if negate:
        return f"NOT COALESCE({clause}, FALSE)" if q.dialect == "postgresql" else f"NOT IFNULL({clause}, 0)"
    return clause


def compile_query(terms: Sequence[str], *, sources: Sequence[str] | None = None,
                  dialect: str = "sqlite") -> Compiled:
    """All terms ANDed into one WHERE expression; `sources` is the old --source option."""
    if len(terms) > MAX_TERMS:  # SQLite refuses an expression nested ~1000 deep: say so as a usage error
        raise UsageError(f"too many query terms ({len(terms)}); at most {MAX_TERMS}")
    if any(len(term) > MAX_TERM_CHARS for term in terms):  # SQLite's LIKE refuses a pattern of 50,000 bytes
        raise UsageError(f"a query term is longer than {MAX_TERM_CHARS} characters")
    q = Compiled(dialect=dialect)
    clauses = []
    if sources:
        clauses.append(f"c.source IN ({', '.join(q.bind(s) for s in sources)})")
    for term in terms:
        clause = _term_clause(q, term.strip())
        if clause:
            clauses.append(clause)
    q.where = " AND ".join(clauses)
    return q


def compile_sort(specs: Sequence[str], dialect: str = "sqlite") -> str:
    """ORDER BY text from `title`, `duration-` (descending), `-duration`, or `a,b`; empty values last."""
    keys = [key.strip() for spec in specs for key in spec.split(",") if key.strip()]
    if not keys:
        return DEFAULT_ORDER
    parts = []
    for key in keys:
        descending = key.endswith("-") or key.startswith("-")
        name = key.strip("+-")
        if not name:
            raise UsageError(f"empty sort key in {key!r}; valid fields: {field_names()}")
        try:
            fld = lookup(name)
        except UsageError:
            raise UsageError(f"cannot sort by {name!r}; valid fields: {field_names()}") from None
        expr = fld.sort or fld.column
        if dialect == "postgresql" and expr.endswith(" COLLATE NOCASE"):
            expr = f"lower({fld.column})"
        empty = f"{fld.column} IS NULL OR {fld.column} = ''" if fld.kind == "text" else f"{fld.column} IS NULL"
        parts.append(f"({empty}), {expr} {'DESC' if descending else 'ASC'}")
    return ", ".join(parts) + ", c.id"


# --- full-text search -------------------------------------------------------------------------

_FTS_TOKEN = r'"([^"]*)"|(\S+)'


def fts_query(text: str) -> str:
    """An FTS5 MATCH string in which every user term is a quoted phrase (so no syntax can leak).

    `"two words"` is a phrase, `word*` a prefix; everything else is literal text. Raises
    UsageError when nothing searchable is left.
    """
    phrases = []
    for match in _pattern(_FTS_TOKEN).finditer(text):
        phrase = match.group(1) if match.group(1) is not None else match.group(2)
        prefix = match.group(2) is not None and phrase.endswith("*")
        phrase = phrase.rstrip("*") if prefix else phrase
        phrase = phrase.replace('"', " ")
        if not any(ch.isalnum() for ch in phrase):
            continue  # punctuation only: it tokenizes to nothing
        phrases.append(f'"{phrase.strip()}"' + ("*" if prefix else ""))
    if not phrases:
        raise UsageError(f"nothing to search for in {text!r}; give at least one word")
    if len(phrases) > MAX_SEARCH_WORDS:  # each word is one more pass over the index and the snippets
        raise UsageError(f"too many words to search for ({len(phrases)}); at most {MAX_SEARCH_WORDS}")
    return " ".join(phrases)
