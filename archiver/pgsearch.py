"""Full-text search on PostgreSQL: the same query text as FTS5, the same order by rank.

The user's words become a tsquery through `websearch_to_tsquery` (quoted phrases stay phrases);
a `word*` prefix, which that function cannot say, is a `to_tsquery` lexeme with `:*`. Ranks
weigh a hit in the title most, then tags, then lyrics (library.FTS_WEIGHTS, scaled to ts_rank's
0..1), and `ts_headline` marks the words found like FTS5's snippet().
"""

from __future__ import annotations

import re
from typing import Any

from .errors import UsageError
from .pgschema import SEARCH_COLUMN, UNACCENT

_TOKEN = re.compile(r'"([^"]*)"|(\S+)')
_WORD = re.compile(r"\w+")


def tsquery(text: str) -> tuple[str, dict[str, Any]]:
    """The SQL of one tsquery for `text`, and its parameters; UsageError when nothing is searchable."""
    phrases: list[str] = []
    prefixes: list[str] = []
    for match in _TOKEN.finditer(text):
        phrase = match.group(1) if match.group(1) is not None else match.group(2)
        words = _WORD.findall(phrase)
        if not words:
            continue  # punctuation only: it tokenizes to nothing
        if match.group(2) is not None and phrase.endswith("*"):
            prefixes.append(" <-> ".join([*(f"'{w}'" for w in words[:-1]), f"'{words[-1]}':*"]))
        else:
            phrases.append('"' + phrase.replace('"', " ").strip() + '"')
    if not phrases and not prefixes:
        raise UsageError(f"nothing to search for in {text!r}; give at least one word")
    parts, params = [], {}
    if phrases:
        parts.append(f"websearch_to_tsquery('simple', {UNACCENT}(:words))")
        params["words"] = " ".join(phrases)
    if prefixes:
        parts.append(f"to_tsquery('simple', {UNACCENT}(:prefixes))")
        params["prefixes"] = " & ".join(f"({p})" for p in prefixes)
    return " && ".join(parts), params


def search_parts(files: str, text: str, weights: tuple[float, float, float],
                 marks: tuple[str, str]) -> tuple[str, str, dict[str, Any]]:
    """(the snippet and score columns, the FROM ... WHERE clause, their parameters) of a search over
    clips c, tasks t and the file joins; `weights` are (title, lyrics, tags). More conditions may
    follow the clause with AND."""
    query, params = tsquery(text)
    title, lyrics, tags = weights
    top = max(weights)
    ranks = ", ".join(f"{w / top:g}" for w in (min(weights) / 10, lyrics, tags, title))  # {D, C, B, A}
    params["options"] = (f"StartSel={marks[0]}, StopSel={marks[1]}, MaxWords=12, MinWords=4, MaxFragments=2, "
                         "FragmentDelimiter=…")
    columns = f""",
           ts_headline('simple', concat_ws(' … ', c.title, c.tags, c.lyrics), q.query, :options) AS snippet,
           ts_rank('{{{ranks}}}', c.{SEARCH_COLUMN}, q.query) AS score"""
    source = f"""
        FROM (SELECT {query} AS query) q
        CROSS JOIN clips c
        JOIN tasks t ON t.id = c.task_pk{files}
        WHERE c.{SEARCH_COLUMN} @@ q.query"""
    return columns, source, params
