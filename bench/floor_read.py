"""The fastest a Python read command could be: the interpreter, click (the CLI library archiver is
built on), the same SQL through the standard library's sqlite3, rows as JSON on stdout.

    python bench/floor_read.py LIBRARY.db SCRIPT.sql

It parses no options, loads no configuration and formats nothing beyond `json.dumps`, so it is a
floor for `ls`, `search` and `show`, not a competitor: archiver cannot be faster than this.
"""

from __future__ import annotations

import json
import sqlite3
import sys

import click  # noqa: F401  (its import is part of what every archiver command pays)


def main(db: str, script: str) -> None:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.create_function("archiver_fold", 1, lambda v: v.casefold() if isinstance(v, str) else v,
                         deterministic=True)
    with open(script, encoding="utf-8") as fh:
        statements = [s for s in fh.read().split(";\n") if s.strip()]
    rows: list[dict[str, object]] = []
    for sql in statements:
        cursor = conn.execute(sql)
        names = [d[0] for d in cursor.description or ()]
        rows = [dict(zip(names, row)) for row in cursor]
    sys.stdout.write(json.dumps(rows, ensure_ascii=False, default=str))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
